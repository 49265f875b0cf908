//! Grouping claimed rows into jobs: each user head with the user updates claimed behind
//! it (coalescing) makes a record, and with `WEBENGAGE_BULK` due user records and due
//! event records go through `bulk-users` / `bulk-events`, up to 25 a request, which
//! carries 25 times the records of single calls within WebEngage's quotas.
//!
//! A claim holds at most one head per user, so a batch never carries two records of
//! one user and per-user order is kept. WebEngage does not say whether one bad record
//! fails a whole bulk request, so a 400 splits the batch (`job::run`).

use std::collections::HashMap;

use super::job::{Job, Record};
use crate::store::outbox::ClaimedRow;
use crate::webengage::OperationKind;

/// WebEngage's maximum records per bulk request.
pub const MAX_BATCH: usize = 25;

/// The jobs for claimed `heads` and the `followers` claimed behind them: records of
/// users and of events in batches when bulk is on and more than one is due, everything
/// else one job per record.
pub fn plan(heads: Vec<ClaimedRow>, followers: Vec<ClaimedRow>, bulk: bool) -> Vec<Job> {
    let records = records(heads, followers);
    if !bulk {
        return records.into_iter().map(single).collect();
    }
    let (mut users, mut events, mut jobs) = (Vec::new(), Vec::new(), Vec::new());
    for record in records {
        match record.kind() {
            OperationKind::User => users.push(record),
            OperationKind::Event => events.push(record),
            OperationKind::Transaction => jobs.push(single(record)),
        }
    }
    for mut group in [users, events] {
        while !group.is_empty() {
            let rest = group.split_off(group.len().min(MAX_BATCH));
            jobs.push(Job {
                records: group,
                probe: false,
            });
            group = rest;
        }
    }
    jobs
}

fn single(record: Record) -> Job {
    Job {
        records: vec![record],
        probe: false,
    }
}

/// Each head with the followers of its user, in order.
fn records(heads: Vec<ClaimedRow>, followers: Vec<ClaimedRow>) -> Vec<Record> {
    let mut behind: HashMap<String, Vec<ClaimedRow>> = HashMap::new();
    for row in followers {
        if let Some(user) = row.user_id.clone() {
            behind.entry(user).or_default().push(row);
        }
    }
    heads
        .into_iter()
        .map(|head| {
            let mine = head
                .user_id
                .as_ref()
                .filter(|_| head.kind == OperationKind::User)
                .and_then(|u| behind.remove(u))
                .unwrap_or_default();
            Record::merged(head, mine)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::OffsetDateTime;
    use uuid::Uuid;

    use super::*;
    use OperationKind::{Event, Transaction, User};

    fn row(id: i64, kind: OperationKind, user: &str) -> ClaimedRow {
        ClaimedRow {
            id,
            request_id: Uuid::from_u128(id as u128),
            kind,
            user_id: Some(user.to_owned()),
            body: json!({"userId": user}),
            attempts: 0,
            created_at: OffsetDateTime::UNIX_EPOCH,
            age_from: OffsetDateTime::UNIX_EPOCH,
            lease_token: Uuid::nil(),
            inbound_request_id: None,
            trace_context: None,
        }
    }

    fn shape(jobs: &[Job]) -> Vec<(char, usize)> {
        jobs.iter()
            .map(|j| {
                let kind = j.kind().unwrap().as_str().chars().next().unwrap();
                (kind, j.records.len())
            })
            .collect()
    }

    #[test]
    fn plan_batches_users_and_events_up_to_25() {
        let mut rows: Vec<ClaimedRow> = (0..27).map(|i| row(i, User, &format!("u{i}"))).collect();
        rows.push(row(100, Event, "a"));
        rows.push(row(101, Transaction, "b"));
        rows.push(row(102, Event, "c"));
        let jobs = plan(rows, Vec::new(), true);
        assert_eq!(shape(&jobs), vec![('t', 1), ('u', 25), ('u', 2), ('e', 2)]);
    }

    #[test]
    fn bulk_off_sends_every_record_alone() {
        let jobs = plan(
            vec![row(1, User, "a"), row(2, User, "b")],
            Vec::new(),
            false,
        );
        assert_eq!(shape(&jobs), vec![('u', 1), ('u', 1)]);
    }

    #[test]
    fn followers_join_their_users_head_in_order() {
        let heads = vec![row(1, User, "a"), row(2, User, "b"), row(3, Event, "c")];
        let followers = vec![row(7, User, "a"), row(9, User, "a"), row(8, User, "b")];
        let jobs = plan(heads, followers, false);
        let ids: Vec<Vec<i64>> = jobs
            .iter()
            .map(|j| j.rows().map(|r| r.id).collect())
            .collect();
        assert_eq!(ids, vec![vec![1, 7, 9], vec![2, 8], vec![3]]);
    }
}
