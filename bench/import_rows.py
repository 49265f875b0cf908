#!/usr/bin/env python3
"""Writes ROWS exported CRM rows as CSV on stdout, for bench/import.sh.

  import_rows.py lsq ROWS   LeadSquared lead export (the lead webhook's 40 fields)
  import_rows.py sf ROWS    Salesforce Data Loader export of Leads (API names)

Every row is a different lead; a few hundredths of them are bad (an e-mail that is
not one), so the rejects file is exercised too.
"""
import sys

kind, rows = sys.argv[1], int(sys.argv[2])
out = sys.stdout
w = out.write

if kind == "lsq":
    w("ProspectID,ProspectAutoId,FirstName,LastName,EmailAddress,Origin,Phone,Mobile,Source,"
      "SourceMedium,SourceCampaign,DoNotEmail,DoNotCall,DoNotSMS,ProspectStage,Score,"
      "EngagementScore,TotalVisits,PageViewsPerVisit,AvgTimePerVisit,OwnerId,OwnerIdName,"
      "OwnerIdEmailAddress,CreatedBy,CreatedOn,ModifiedBy,ModifiedOn,Notes,mx_City,mx_State,"
      "mx_Country,mx_Zip,mx_Course_Interest,mx_Preferred_Batch,mx_WhatsApp_Number,"
      "mx_Date_of_Birth,mx_Lead_Status,mx_UTM_Term\n")
    stages = ["Prospect", "Opportunity", "Customer", "Lost"]
    for i in range(rows):
        email = f"lead{i}@example.com" if i % 97 else f"lead{i}-at-example.com"
        w(f"5c1f9a2e-7b4d-4e0a-9c3f-{i:012d},{48213 + i},Rohan,Deshpande{i % 1000},{email},"
          f"Landing Page,+91-98765{i % 100000:05d},+91-91234{(i * 7) % 100000:05d},Google Ads,cpc,"
          f"JEE-Crash-Course-Jan24,0,0,0,{stages[i % 4]},{i % 100},0,1,3,142,"
          f"a7e2c1d4-3b5f-11ee-9f2a-0a1b2c3d4e5f,Sneha Kulkarni,sneha.kulkarni@example.org,"
          f"a7e2c1d4-3b5f-11ee-9f2a-0a1b2c3d4e5f,2024-01-15 10:30:00,"
          f"a7e2c1d4-3b5f-11ee-9f2a-0a1b2c3d4e5f,2024-01-{1 + i % 28:02d} 10:30:00,,Pune,"
          f"Maharashtra,India,411038,JEE Main Crash Course,Weekend,+91-98765{i % 100000:05d},"
          f"2007-08-21 00:00:00,New,jee crash course pune\n")
elif kind == "sf":
    w("Id,FirstName,LastName,Email,Company,City,Country,MobilePhone,Phone,LeadSource,Status,"
      "HasOptedOutOfEmail,WebEngage_Opt_In__c,Product_Interest__c,CreatedDate,LastModifiedDate\n")
    for i in range(rows):
        email = f"meera{i}@example.com" if i % 97 else f"meera{i}-at-example.com"
        w(f"00Q5j{i:010d}AAA,Meera,Iyer{i % 1000},{email},Rao & Iyer Consulting,Pune,India,"
          f"+91 98765 {i % 100000:05d},(020) 4567 8901,Web,Open - Not Contacted,false,true,"
          f"Data Science Bootcamp,2024-01-15T10:30:00.000Z,2024-01-{1 + i % 28:02d}T10:30:04.000Z\n")
else:
    sys.exit(f"unknown kind {kind}: lsq or sf")
