#!/usr/bin/env python3
"""Prints a Salesforce outbound message with N Lead notifications (unique per run via BENCHRUN)."""
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
parts = ["""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound">
<OrganizationId>00D5j00000KqRtBEAV</OrganizationId><ActionId>04k5j000000TxQmAAK</ActionId>
<SessionId xsi:nil="true"/><EnterpriseUrl>https://x.my.salesforce.com/services/Soap/c/60.0</EnterpriseUrl>
<PartnerUrl>https://x.my.salesforce.com/services/Soap/u/60.0</PartnerUrl>"""]
for i in range(n):
    parts.append(f"""<Notification><Id>04lBENCHRUN{i:06d}</Id><sObject xsi:type="sf:Lead" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
<sf:Id>00QBENCHRUN{i:06d}</sf:Id><sf:Email>lead{i}.BENCHRUN@example.com</sf:Email><sf:FirstName>Lead</sf:FirstName>
<sf:LastName>Number {i}</sf:LastName><sf:MobilePhone>+91 98765 {i:05d}</sf:MobilePhone><sf:Status>Open</sf:Status>
<sf:LastModifiedDate>2024-01-15T10:30:00.000Z</sf:LastModifiedDate></sObject></Notification>""")
parts.append("</notifications></soapenv:Body></soapenv:Envelope>")
print("\n".join(parts))
