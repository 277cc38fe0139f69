//! The storage conformance suite. Every backend runs these same tests; a backend is
//! added by one more `suite!` line with a constructor for a fresh, empty store.

use std::sync::Arc;

use cairn_core::md5::md5_hex;
use cairn_core::{ConfigKey, Format, GrayRules, Namespace, Revision, Username};
use cairn_store::*;

fn key(data_id: &str) -> ConfigKey {
    ConfigKey::parse("public", "DEFAULT_GROUP", data_id).unwrap()
}

fn audit(at: i64) -> Audit {
    Audit {
        operator: "alice".into(),
        source: "127.0.0.1".into(),
        comment: String::new(),
        at,
        surface: "native".into(),
        emergency: false,
    }
}

/// The first page of ten of a history.
const FIRST_TEN: Page = Page {
    number: 1,
    size: 10,
};

fn write(key: &ConfigKey, content: &str, expect: Expect, at: i64) -> ConfigWrite {
    ConfigWrite {
        key: key.clone(),
        op: Op::Publish,
        content: content.into(),
        md5: md5_hex(content),
        format: Some(Format::Yaml),
        default_format: Format::Text,
        validated_as: None,
        description: Some("desc".into()),
        tags: Some(vec!["team-a".into(), "db".into()]),
        sensitive: None,
        expect,
        audit: audit(at),
    }
}

async fn publish_then_load(store: Arc<dyn Store>) {
    let k = key("app.yaml");
    let first = store
        .put_config(&write(&k, "a: 1", Expect::Any, 1000))
        .await
        .unwrap();
    let second = store
        .put_config(&write(&k, "a: 2", Expect::Any, 2000))
        .await
        .unwrap();
    assert!(second.revision > first.revision);
    assert_eq!(second.created_at, 1000, "creation time survives updates");
    assert_eq!(second.updated_at, 2000);
    let all = store.load_configs().await.unwrap();
    assert_eq!(all, vec![second]);
    assert_eq!(all[0].tags, vec!["team-a", "db"]);
    assert_eq!(all[0].format, Format::Yaml);
}

async fn the_sensitive_mark_is_kept_until_changed(store: Arc<dyn Store>) {
    let k = key("db.properties");
    let marked = ConfigWrite {
        sensitive: Some(true),
        ..write(&k, "a: 1", Expect::Any, 1000)
    };
    assert!(store.put_config(&marked).await.unwrap().sensitive);
    // A write that does not say keeps it, through a reload too.
    let kept = store
        .put_config(&write(&k, "a: 2", Expect::Any, 2000))
        .await
        .unwrap();
    assert!(kept.sensitive);
    assert!(store.get_config(&k).await.unwrap().unwrap().sensitive);
    assert!(store.load_configs().await.unwrap()[0].sensitive);
    let unmarked = ConfigWrite {
        sensitive: Some(false),
        ..write(&k, "a: 3", Expect::Any, 3000)
    };
    let now = store.put_config(&unmarked).await.unwrap();
    assert!(!now.sensitive);
    assert!(!store.load_configs().await.unwrap()[0].sensitive);
    // Each history entry keeps the mark its config had when it was written.
    let entry = |revision| {
        let store = store.clone();
        let k = k.clone();
        async move { store.history_entry(&k, revision).await.unwrap().unwrap() }
    };
    assert!(entry(kept.revision).await.sensitive);
    assert!(!entry(now.revision).await.sensitive);
    let before = store
        .history_before(&k, now.revision)
        .await
        .unwrap()
        .unwrap();
    assert!(before.sensitive);
}

async fn imports_land_whole_or_not_at_all(store: Arc<dyn Store>) {
    let (a, b, c) = (key("a.yaml"), key("b.yaml"), key("c.yaml"));
    store
        .put_config(&write(&b, "b: 0", Expect::Any, 1000))
        .await
        .unwrap();
    // The last write's expectation fails: none of the three lands.
    let failing = [
        write(&a, "a: 1", Expect::Absent, 2000),
        write(&c, "c: 1", Expect::Absent, 2000),
        write(&b, "b: 1", Expect::Absent, 2000),
    ];
    assert!(store.import(&failing, &[]).await.is_err());
    let stored = store.load_configs().await.unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].content, "b: 0");
    let landing = [
        write(&a, "a: 1", Expect::Absent, 3000),
        write(&b, "b: 1", Expect::Md5(md5_hex("b: 0")), 3000),
    ];
    let records = store.import(&landing, &[]).await.unwrap();
    let keys: Vec<&ConfigKey> = records.iter().map(|r| &r.key).collect();
    assert_eq!(keys, [&a, &b], "the records come back in the writes' order");
    assert!(records[0].revision < records[1].revision);
    assert_eq!(store.load_configs().await.unwrap().len(), 2);
    // A write into a namespace that does not exist fails the import it is in.
    let elsewhere = ConfigKey::parse("nowhere", "g", "x.yaml").unwrap();
    let failing = [
        write(&c, "c: 2", Expect::Absent, 4000),
        write(&elsewhere, "x: 1", Expect::Absent, 4000),
    ];
    let refused = store.import(&failing, &[]).await;
    assert!(
        matches!(refused, Err(StoreError::NamespaceNotFound(_))),
        "{refused:?}"
    );
    assert_eq!(store.load_configs().await.unwrap().len(), 2);
}

async fn a_large_import_records_each_config_as_a_publish_does(store: Arc<dyn Store>) {
    // More configs than one statement carries, a few of them already stored (and
    // marked sensitive, with their own description), in two groups.
    let keys: Vec<ConfigKey> = (0..450)
        .map(|i| {
            let group = if i % 3 == 0 { "other" } else { "DEFAULT_GROUP" };
            ConfigKey::parse("public", group, &format!("c{i}.yaml")).unwrap()
        })
        .collect();
    let mut existing = Vec::new();
    for k in keys.iter().step_by(97) {
        let before = ConfigWrite {
            sensitive: Some(true),
            description: Some("kept".into()),
            ..write(k, "old: 1", Expect::Any, 1000)
        };
        existing.push(store.put_config(&before).await.unwrap());
    }
    let writes: Vec<ConfigWrite> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| ConfigWrite {
            description: None,
            ..write(k, &format!("n: {i}"), Expect::Any, 2000)
        })
        .collect();
    let records = store.import(&writes, &[]).await.unwrap();
    assert_eq!(records.len(), keys.len());
    for (i, (record, k)) in records.iter().zip(&keys).enumerate() {
        assert_eq!(&record.key, k, "the records come back in the writes' order");
        assert_eq!(record.content, format!("n: {i}"));
        if i > 0 {
            assert!(record.revision > records[i - 1].revision);
        }
    }
    let loaded = store.load_configs().await.unwrap();
    assert_eq!(loaded.len(), keys.len());
    for before in &existing {
        let now = loaded.iter().find(|r| r.key == before.key).unwrap();
        assert!(now.sensitive, "{} keeps its mark", now.key);
        assert_eq!(now.description, "kept");
        assert_eq!(now.created_at, 1000, "creation survives the import");
        let entry = store.history_entry(&now.key, now.revision).await.unwrap();
        let entry = entry.unwrap();
        assert!(entry.sensitive);
        let (versions, total) = store
            .history(
                &now.key,
                Page {
                    number: 1,
                    size: 10,
                },
            )
            .await
            .unwrap();
        assert_eq!((versions.len(), total), (2, 2), "{}", now.key);
    }
    let fresh = loaded.iter().find(|r| r.key == keys[1]).unwrap();
    assert_eq!((fresh.description.as_str(), fresh.sensitive), ("", false));
    let entry = store.history_entry(&keys[449], records[449].revision);
    assert_eq!(entry.await.unwrap().unwrap().content, "n: 449");
    // One change-log entry per config, with the revision its record carries.
    let since = existing.last().unwrap().revision.get();
    let changes = store.changes_since(since, 1_000).await.unwrap();
    assert_eq!(changes.len(), keys.len());
    for change in &changes {
        let record = records.iter().find(|r| r.key == change.key).unwrap();
        assert_eq!(change.seq, record.revision);
        assert_eq!(change.md5, record.md5);
    }
    // One audit entry per config, naming what it replaced.
    let imported = AuditQuery {
        from: Some(2000),
        ..AuditQuery::default()
    };
    let page = Page {
        number: 1,
        size: 1_000,
    };
    let (entries, total) = store.audit(&imported, page).await.unwrap();
    assert_eq!(total, keys.len() as u64);
    let replaced = entries.iter().filter(|e| e.md5_before.is_some()).count();
    assert_eq!(replaced, existing.len());
}

async fn an_import_writes_past_versions_as_history_only(store: Arc<dyn Store>) {
    let kept = store
        .put_config(&write(&key("kept.yaml"), "k: 1", Expect::Any, 1000))
        .await
        .unwrap();
    let past = |k: &ConfigKey, op: Op, content: &str, at: i64| PastVersion {
        key: k.clone(),
        op,
        content: content.into(),
        format: Format::Yaml,
        md5: if op == Op::Delete {
            String::new()
        } else {
            md5_hex(content)
        },
        description: format!("as of {at}"),
        tags: vec!["old".into()],
        sensitive: at == 100,
        audit: Audit {
            operator: "ann".into(),
            comment: format!("step {at}"),
            ..audit(at)
        },
    };
    // Enough configs that their past versions take more than one statement.
    let keys: Vec<ConfigKey> = (0..150).map(|i| key(&format!("c{i}.yaml"))).collect();
    let mut versions = Vec::new();
    for k in &keys {
        versions.push(past(k, Op::Publish, "v: 1", 100));
        versions.push(past(k, Op::Delete, "", 200));
        versions.push(past(k, Op::Publish, "v: 3", 300));
    }
    // A config that exists already keeps its own history.
    versions.push(past(&key("kept.yaml"), Op::Publish, "k: 0", 50));
    let mut writes: Vec<ConfigWrite> = keys
        .iter()
        .map(|k| write(k, "v: 4", Expect::Absent, 2000))
        .collect();
    writes.push(write(&key("kept.yaml"), "k: 2", Expect::Any, 2000));
    let records = store.import(&writes, &versions).await.unwrap();

    let page = Page {
        number: 1,
        size: 10,
    };
    for (k, record) in keys.iter().zip(&records) {
        let (entries, total) = store.history(k, page).await.unwrap();
        assert_eq!(total, 4, "{k}");
        // Newest first: the import's own entry, then the past, newest to oldest.
        assert_eq!(entries[0].revision, record.revision);
        let past: Vec<_> = entries[1..].iter().rev().collect();
        assert_eq!(
            past.iter()
                .map(|e| (e.op, e.created_at))
                .collect::<Vec<_>>(),
            [(Op::Publish, 100), (Op::Delete, 200), (Op::Publish, 300)]
        );
        assert!(past.iter().all(|e| e.revision < record.revision));
        assert!(past[0].sensitive && !past[2].sensitive);
        assert_eq!(
            (past[0].operator.as_str(), past[0].comment.as_str()),
            ("ann", "step 100")
        );
        let oldest = store
            .history_entry(k, past[0].revision)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((oldest.content.as_str(), oldest.tags.len()), ("v: 1", 1));
        assert_eq!(oldest.description, "as of 100");
    }
    let (entries, total) = store.history(&key("kept.yaml"), page).await.unwrap();
    assert_eq!(total, 2, "{entries:?}");
    // The change log holds the import's writes alone: no node applies a past version.
    let changes = store
        .changes_since(kept.revision.get(), 10_000)
        .await
        .unwrap();
    assert_eq!(changes.len(), writes.len());
    for (change, record) in changes.iter().zip(&records) {
        assert_eq!((change.seq, &change.key), (record.revision, &record.key));
    }
    let whole = store.namespace_history(&Namespace::public()).await.unwrap();
    assert_eq!(whole.len(), keys.len() * 4 + 2);
    assert!(whole.iter().any(|e| e.content == "v: 3"));
    let imported = AuditQuery {
        from: Some(2000),
        ..AuditQuery::default()
    };
    let (_, audited) = store.audit(&imported, page).await.unwrap();
    assert_eq!(
        audited,
        writes.len() as u64,
        "one audit entry per imported config"
    );
}

async fn webhook_deliveries_are_made_once_and_taken_once(store: Arc<dyn Store>) {
    let before = store
        .put_config(&write(&key("early.yaml"), "a: 0", Expect::Any, 1000))
        .await
        .unwrap();
    let hook = store
        .add_webhook(&WebhookWrite {
            namespace: Namespace::public(),
            url: "https://hooks.example.com/cairn".into(),
            secret: "a-secret-of-enough-length".into(),
            events: vec!["publish".into(), "delete".into()],
            group: String::new(),
            data_id: "*.yaml".into(),
            audit: audit(1500),
        })
        .await
        .unwrap();
    assert_eq!(
        hook.after_seq,
        before.revision.get(),
        "changes from its creation on"
    );
    let listed = store.webhooks(Some(&Namespace::public())).await.unwrap();
    assert_eq!(
        listed,
        vec![hook.clone()],
        "the secret reads back as it was set"
    );
    let refused = store
        .add_webhook(&WebhookWrite {
            namespace: Namespace::parse("nowhere").unwrap(),
            ..WebhookWrite {
                namespace: Namespace::public(),
                url: "https://x.example.com/".into(),
                secret: "a-secret-of-enough-length".into(),
                events: Vec::new(),
                group: String::new(),
                data_id: String::new(),
                audit: audit(1500),
            }
        })
        .await;
    assert!(
        matches!(refused, Err(StoreError::NamespaceNotFound(_))),
        "{refused:?}"
    );

    let cursor = store.webhook_cursor().await.unwrap();
    assert_eq!(
        cursor, hook.after_seq,
        "the first subscription starts the cursor"
    );
    let made = |seq: i64| NewDelivery {
        webhook_id: hook.id,
        seq,
        event: Op::Publish,
        key: key("app.yaml"),
        md5: "m".into(),
        at: 2000,
    };
    assert!(store
        .enqueue_deliveries(cursor, cursor + 2, &[made(cursor + 1), made(cursor + 2)])
        .await
        .unwrap());
    // A second node with the same view moves nothing and makes nothing.
    assert!(!store
        .enqueue_deliveries(cursor, cursor + 2, &[made(cursor + 1)])
        .await
        .unwrap());
    assert_eq!(store.webhook_cursor().await.unwrap(), cursor + 2);
    let pending = store.pending_deliveries(10).await.unwrap();
    assert_eq!(pending.len(), 2);
    let first = &pending[0];
    assert_eq!(
        (first.seq, first.status, first.attempts),
        (cursor + 1, DeliveryStatus::Pending, 0)
    );
    assert!(store.claim_delivery(first.id, 2000, 62_000).await.unwrap());
    assert!(
        !store.claim_delivery(first.id, 2000, 62_000).await.unwrap(),
        "taken once"
    );
    let failed = Attempt {
        response_code: Some(503),
        error: "answered 503".into(),
        latency_ms: 12,
        status: DeliveryStatus::Pending,
        next_attempt_at: 5000,
        at: 2100,
    };
    store.finish_delivery(first.id, &failed).await.unwrap();
    assert!(
        !store.claim_delivery(first.id, 4999, 70_000).await.unwrap(),
        "not due yet"
    );
    assert!(store.claim_delivery(first.id, 5000, 70_000).await.unwrap());
    let delivered = Attempt {
        response_code: Some(200),
        error: String::new(),
        status: DeliveryStatus::Delivered,
        next_attempt_at: 5100,
        at: 5100,
        ..failed
    };
    store.finish_delivery(first.id, &delivered).await.unwrap();
    let page = Page {
        number: 1,
        size: 10,
    };
    let (log, total) = store.deliveries(hook.id, page).await.unwrap();
    assert_eq!(total, 2);
    let done = log.iter().find(|d| d.id == first.id).unwrap();
    assert_eq!(
        (done.status, done.attempts, done.response_code),
        (DeliveryStatus::Delivered, 2, Some(200))
    );
    assert_eq!(store.pending_deliveries(10).await.unwrap().len(), 1);
    assert!(store.redeliver(hook.id, first.id, 9000).await.unwrap());
    assert!(!store.redeliver(hook.id + 1, first.id, 9000).await.unwrap());
    assert_eq!(store.pending_deliveries(10).await.unwrap().len(), 2);

    assert!(store.remove_webhook(hook.id, &audit(9100)).await.unwrap());
    assert!(!store.remove_webhook(hook.id, &audit(9100)).await.unwrap());
    assert!(
        store.pending_deliveries(10).await.unwrap().is_empty(),
        "its log went with it"
    );
    let actions = AuditQuery {
        from: Some(1500),
        ..AuditQuery::default()
    };
    let (entries, _) = store.audit(&actions, page).await.unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["webhook.remove", "webhook.add"]);
}

async fn change_requests_move_once_and_keep_their_timeline(store: Arc<dyn Store>) {
    let k = key("review.yaml");
    let base = store
        .put_config(&write(&k, "a: 1", Expect::Any, 1000))
        .await
        .unwrap();
    let hook = store
        .add_webhook(&WebhookWrite {
            namespace: Namespace::public(),
            url: "https://hooks.example.com/cairn".into(),
            secret: "a-secret-of-enough-length".into(),
            events: Vec::new(),
            group: String::new(),
            data_id: String::new(),
            audit: audit(1100),
        })
        .await
        .unwrap();
    let opened = store
        .open_change_request(
            &NewChangeRequest {
                key: k.clone(),
                op: Op::Publish,
                content: "a: 2".into(),
                md5: md5_hex("a: 2"),
                format: None,
                description: Some("two".into()),
                tags: None,
                sensitive: Some(true),
                base_md5: base.md5.clone(),
                base_revision: Some(base.revision),
                audit: Audit {
                    comment: "raise a".into(),
                    ..audit(2000)
                },
            },
            &[hook.id],
        )
        .await
        .unwrap();
    assert_eq!(opened.status, ReviewStatus::Open);
    assert_eq!(
        opened.content, "a: 2",
        "the content reads back (sealed or not)"
    );
    assert_eq!(
        (opened.author.as_str(), opened.comment.as_str()),
        ("alice", "raise a")
    );
    assert_eq!(opened.base_revision, Some(base.revision));
    assert_eq!(opened.sensitive, Some(true));
    assert_eq!(opened.tags, None, "unset fields stay unset");
    assert_eq!(
        store.change_request(opened.id).await.unwrap(),
        Some(opened.clone())
    );
    let nowhere = store
        .open_change_request(
            &NewChangeRequest {
                key: ConfigKey::parse("nowhere", "g", "d").unwrap(),
                op: Op::Delete,
                content: String::new(),
                md5: String::new(),
                format: None,
                description: None,
                tags: None,
                sensitive: None,
                base_md5: String::new(),
                base_revision: None,
                audit: audit(2000),
            },
            &[],
        )
        .await;
    assert!(
        matches!(nowhere, Err(StoreError::NamespaceNotFound(_))),
        "{nowhere:?}"
    );

    let step = |from, to, event, at| ReviewStep {
        id: opened.id,
        from,
        to,
        event,
        released: None,
        rebase: None,
        audit: Audit {
            operator: "bob".into(),
            comment: format!("{event} at {at}"),
            ..audit(at)
        },
        webhooks: vec![hook.id],
    };
    let stale = store
        .step_change_request(&step(
            ReviewStatus::Open,
            ReviewStatus::Stale,
            "stale",
            3000,
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stale.status, ReviewStatus::Stale);
    assert_eq!(stale.reviewer, "", "going stale is nobody's review");
    assert_eq!(
        store
            .step_change_request(&step(
                ReviewStatus::Open,
                ReviewStatus::Approved,
                "approved",
                3100
            ))
            .await
            .unwrap(),
        None,
        "a step from a state it is no longer in is refused"
    );
    let rebased = store
        .step_change_request(&ReviewStep {
            rebase: Some(Rebase {
                base_md5: md5_hex("a: 5"),
                base_revision: Revision::new(base.revision.get() + 7),
                content: Some(("a: 6".into(), md5_hex("a: 6"))),
            }),
            webhooks: Vec::new(),
            ..step(ReviewStatus::Stale, ReviewStatus::Open, "rebased", 3200)
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rebased.status, ReviewStatus::Open);
    assert_eq!(rebased.content, "a: 6");
    assert_eq!(rebased.md5, md5_hex("a: 6"));
    assert_eq!(rebased.base_md5, md5_hex("a: 5"));
    let approved = store
        .step_change_request(&ReviewStep {
            released: Revision::new(base.revision.get() + 9),
            ..step(ReviewStatus::Open, ReviewStatus::Approved, "approved", 3300)
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(approved.status, ReviewStatus::Approved);
    assert_eq!(approved.reviewer, "bob");
    assert_eq!(approved.released, Revision::new(base.revision.get() + 9));
    assert_eq!(approved.updated_at, 3300);

    let events = store.review_events(opened.id).await.unwrap();
    let steps: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.event.as_str(), e.actor.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            ("opened", "alice"),
            ("stale", "bob"),
            ("rebased", "bob"),
            ("approved", "bob")
        ]
    );
    assert_eq!(
        store.review_event(events[3].id).await.unwrap().as_ref(),
        Some(&events[3])
    );
    // Only the steps given subscriptions are sent, each under its own event's id.
    let sent = store.pending_deliveries(10).await.unwrap();
    let sent: Vec<(i64, &str)> = sent.iter().map(|d| (d.seq, d.event.as_str())).collect();
    assert_eq!(
        sent,
        [
            (-events[0].id, "change_request_opened"),
            (-events[1].id, "change_request_stale"),
            (-events[3].id, "change_request_approved"),
        ]
    );

    let (open, total) = store
        .change_requests(
            Some(&Namespace::public()),
            Some(ReviewStatus::Open),
            Page {
                number: 1,
                size: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!((open.len(), total), (0, 0));
    let (all, total) = store
        .change_requests(
            None,
            None,
            Page {
                number: 1,
                size: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!((all, total), (vec![approved], 1));
    let actions = AuditQuery {
        from: Some(2000),
        ..AuditQuery::default()
    };
    let (entries, _) = store
        .audit(
            &actions,
            Page {
                number: 1,
                size: 10,
            },
        )
        .await
        .unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "review.approved",
            "review.rebased",
            "review.stale",
            "review.opened"
        ]
    );
}

async fn an_emergency_release_is_flagged_in_history_and_audit(store: Arc<dyn Store>) {
    let k = key("urgent.yaml");
    let mut urgent = write(&k, "a: 1", Expect::Any, 1000);
    urgent.audit.emergency = true;
    urgent.audit.comment = "outage: pool exhausted".into();
    let record = store.put_config(&urgent).await.unwrap();
    store
        .put_config(&write(&k, "a: 2", Expect::Any, 2000))
        .await
        .unwrap();
    let (entries, _) = store
        .history(
            &k,
            Page {
                number: 1,
                size: 10,
            },
        )
        .await
        .unwrap();
    let flags: Vec<bool> = entries.iter().map(|e| e.emergency).collect();
    assert_eq!(flags, [false, true]);
    let entry = store
        .history_entry(&k, record.revision)
        .await
        .unwrap()
        .unwrap();
    assert!(entry.emergency);
    assert_eq!(entry.comment, "outage: pool exhausted");
    let (audit, _) = store
        .audit(
            &AuditQuery::default(),
            Page {
                number: 1,
                size: 10,
            },
        )
        .await
        .unwrap();
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["config.publish", "config.publish.emergency"]);
}

async fn schemas_are_versioned_audited_and_removed(store: Arc<dyn Store>) {
    let target = SchemaTarget {
        namespace: Namespace::parse("public").unwrap(),
        group: "*".into(),
        data_id: "*.yaml".into(),
    };
    let set = |body: &str, expect_version, at| SchemaWrite {
        target: target.clone(),
        body: body.into(),
        expect_version,
        audit: audit(at),
    };
    let first = store
        .put_schema(&set(r#"{"type":"object"}"#, Some(0), 1000))
        .await
        .unwrap();
    assert_eq!((first.version, first.created_at), (1, 1000));
    // A writer that saw version 0 is refused once version 1 exists.
    let stale = store.put_schema(&set("{}", Some(0), 1500)).await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    let second = store
        .put_schema(&set(r#"{"type":"array"}"#, Some(1), 2000))
        .await
        .unwrap();
    assert_eq!(
        (second.version, second.created_at, second.updated_at),
        (2, 1000, 2000)
    );
    assert_eq!(store.schemas().await.unwrap(), vec![second.clone()]);
    let removed = store.remove_schema(&target, &audit(3000)).await.unwrap();
    assert_eq!(removed, second);
    assert!(store.schemas().await.unwrap().is_empty());
    let again = store.remove_schema(&target, &audit(3500)).await;
    assert!(
        matches!(again, Err(StoreError::SchemaNotFound(_))),
        "{again:?}"
    );
    // Attached again, its numbering goes on.
    let third = store.put_schema(&set("{}", Some(0), 4000)).await.unwrap();
    assert_eq!(third.version, 4);
    let history = store.schema_history(&target).await.unwrap();
    let ops: Vec<(u64, &str)> = history.iter().map(|v| (v.version, v.op.as_str())).collect();
    assert_eq!(ops, [(4, "set"), (3, "remove"), (2, "set"), (1, "set")]);
    assert_eq!(history[2].body, r#"{"type":"array"}"#);
    assert_eq!(history[1].body, "", "a removal keeps no body");
    // Each change is audited, with the body's md5 before and after.
    let query = AuditQuery {
        action: Some("schema".into()),
        ..AuditQuery::default()
    };
    let page = Page {
        number: 1,
        size: 10,
    };
    let (entries, total) = store.audit(&query, page).await.unwrap();
    assert_eq!(total, 4);
    let removal = entries
        .iter()
        .find(|e| e.action == "schema.remove")
        .unwrap();
    assert_eq!(removal.md5_before, Some(md5_hex(r#"{"type":"array"}"#)));
    assert_eq!(removal.md5_after, None);
    assert_eq!(removal.target, "public/*/*.yaml");
    // Only into a namespace that exists; a deleted namespace takes its schemas along.
    let nowhere = SchemaWrite {
        target: SchemaTarget {
            namespace: Namespace::parse("nowhere").unwrap(),
            ..target.clone()
        },
        ..set("{}", None, 5000)
    };
    let refused = store.put_schema(&nowhere).await;
    assert!(
        matches!(refused, Err(StoreError::NamespaceNotFound(_))),
        "{refused:?}"
    );
    let dev = Namespace::parse("dev").unwrap();
    let record = NamespaceRecord {
        name: dev.clone(),
        display_name: String::new(),
        description: String::new(),
        created_at: 5,
        apollo_anonymous: Vec::new(),
        limits: NamespaceLimits::default(),
        require_review: false,
    };
    store.create_namespace(&record).await.unwrap();
    let in_dev = SchemaWrite {
        target: SchemaTarget {
            namespace: dev.clone(),
            ..target.clone()
        },
        ..set("{}", None, 6000)
    };
    store.put_schema(&in_dev).await.unwrap();
    store.delete_namespace(&dev).await.unwrap();
    let left: Vec<SchemaTarget> = store
        .schemas()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.target)
        .collect();
    assert_eq!(left, [target]);
}

async fn concurrent_replacements_keep_what_they_leave_out(store: Arc<dyn Store>) {
    // Configs that exist, each replaced by a writer of its own at once, so that the
    // replacements share transactions: each row takes its own new values and keeps its
    // creation and the metadata its write leaves out.
    let keys: Vec<ConfigKey> = (0..24).map(|i| key(&format!("r{i}.yaml"))).collect();
    let mut first = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let record = store
            .put_config(&write(k, &format!("n: {i}"), Expect::Any, 100 + i as i64))
            .await
            .unwrap();
        first.push(record);
    }
    let writers: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let store = store.clone();
            let mut w = write(
                k,
                &format!("n: {i}\nm: {i}"),
                Expect::Md5(first[i].md5.clone()),
                5000 + i as i64,
            );
            w.description = None;
            w.tags = None;
            w.audit.operator = format!("writer{i}");
            tokio::spawn(async move { store.put_config(&w).await })
        })
        .collect();
    let mut revisions = std::collections::HashSet::new();
    for (i, writer) in writers.into_iter().enumerate() {
        let record = writer.await.unwrap().unwrap();
        assert!(record.revision > first[i].revision);
        assert!(
            revisions.insert(record.revision),
            "each write its own revision"
        );
    }
    let stored = store.load_configs().await.unwrap();
    for (i, k) in keys.iter().enumerate() {
        let c = stored.iter().find(|c| &c.key == k).unwrap();
        assert_eq!(c.content, format!("n: {i}\nm: {i}"));
        assert_eq!(c.md5, md5_hex(&c.content));
        assert_eq!(c.updated_by, format!("writer{i}"));
        assert_eq!(c.updated_at, 5000 + i as i64);
        assert_eq!(
            (c.created_by.as_str(), c.created_at),
            ("alice", 100 + i as i64)
        );
        assert_eq!(c.description, "desc", "left out, so kept");
        assert_eq!(c.tags, ["team-a", "db"]);
        assert_eq!(c.format, Format::Yaml);
        let (history, total) = store.history(k, FIRST_TEN).await.unwrap();
        assert_eq!(total, 2);
        assert_eq!(history[0].revision, c.revision);
        let entry = store.history_entry(k, c.revision).await.unwrap().unwrap();
        assert_eq!(entry.content, c.content);
    }
}

async fn other_writes_go_between_streaming_publishes(store: Arc<dyn Store>) {
    // Sixteen writers publish without pause until a delete beside them is done: the
    // committer may keep a connection from group to group, but never so long that
    // another write waits for the publishes to stop (they stop only after it).
    let doomed = key("doomed.yaml");
    store
        .put_config(&write(&doomed, "d: 0", Expect::Any, 500))
        .await
        .unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..16)
        .map(|i| {
            let (store, done) = (store.clone(), done.clone());
            tokio::spawn(async move {
                let mut n = 0u32;
                while !done.load(std::sync::atomic::Ordering::Acquire) {
                    let w = write(
                        &key(&format!("s{i}.yaml")),
                        &format!("n: {n}"),
                        Expect::Any,
                        1000,
                    );
                    store.put_config(&w).await.unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    // Once the stream runs.
    while store.last_seq().await.unwrap() < 40 {
        tokio::task::yield_now().await;
    }
    let deleted = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        store.delete_config(&ConfigDelete {
            key: doomed.clone(),
            expect: Expect::Any,
            audit: audit(2000),
        }),
    )
    .await;
    done.store(true, std::sync::atomic::Ordering::Release);
    let mut published = 0;
    for writer in writers {
        published += writer.await.unwrap();
    }
    deleted
        .expect("the delete waited for the publishes to stop")
        .unwrap();
    assert!(store.get_config(&doomed).await.unwrap().is_none());
    assert!(published >= 40, "{published} publishes");
}

async fn concurrent_publishes_fail_alone(store: Arc<dyn Store>) {
    // Twenty writers at once, so that some share a transaction; one expects an md5 the
    // config does not have, one a config that is not there, one writes into a namespace
    // that does not exist.
    let guarded = key("guarded.yaml");
    store
        .put_config(&write(&guarded, "g: 0", Expect::Any, 500))
        .await
        .unwrap();
    let mut writers = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        let w = match i {
            7 => write(&guarded, "g: 1", Expect::Md5(md5_hex("not it")), 1000),
            13 => write(
                &key("absent.yaml"),
                "a: 1",
                Expect::Md5(md5_hex("a: 0")),
                1000,
            ),
            17 => write(
                &ConfigKey::parse("nowhere", "g", "x.yaml").unwrap(),
                "x: 1",
                Expect::Any,
                1000,
            ),
            // A value PostgreSQL refuses (a NUL byte), which no check before the
            // statement catches: it must fail alone there (the others accept it).
            9 => write(&key("nul.yaml"), "a: \u{0}", Expect::Any, 1000),
            _ => write(
                &key(&format!("w{i}.yaml")),
                &format!("n: {i}"),
                Expect::Any,
                1000,
            ),
        };
        writers.push(tokio::spawn(async move { store.put_config(&w).await }));
    }
    let mut landed = Vec::new();
    for (i, writer) in writers.into_iter().enumerate() {
        let done = writer.await.unwrap();
        match i {
            7 | 13 => assert!(
                matches!(done, Err(StoreError::CasMismatch { .. })),
                "writer {i}: {done:?}"
            ),
            17 => assert!(
                matches!(done, Err(StoreError::NamespaceNotFound(_))),
                "writer {i}: {done:?}"
            ),
            9 => {
                if let Ok(record) = done {
                    landed.push(record);
                }
            }
            _ => landed.push(done.unwrap()),
        }
    }
    let nul = usize::from(landed.iter().any(|r| r.key == key("nul.yaml")));
    assert_eq!(landed.len(), 16 + nul);
    let stored = store.load_configs().await.unwrap();
    assert_eq!(
        stored.len(),
        16 + nul + 1,
        "the new ones and the guarded one"
    );
    let g = stored.iter().find(|c| c.key == guarded).unwrap();
    assert_eq!(g.content, "g: 0", "the failed write left no trace");
    // Each landed write has its change-log entry, at the revision it was given.
    let since = g.revision.get();
    let changes = store.changes_since(since, 100).await.unwrap();
    assert_eq!(changes.len(), 16 + nul);
    for record in &landed {
        assert!(changes
            .iter()
            .any(|c| c.key == record.key && c.seq == record.revision));
        let entry = store
            .history_entry(&record.key, record.revision)
            .await
            .unwrap();
        assert_eq!(entry.unwrap().content, record.content);
    }
    // A lone publish into a namespace that does not exist is refused for that, whatever
    // it expects, before it takes a sequence: a client's mistake leaves no gap in the
    // log for other nodes to wait out.
    let before = store
        .put_config(&write(&key("before.yaml"), "b: 1", Expect::Any, 1500))
        .await
        .unwrap()
        .revision
        .get();
    let nowhere = ConfigKey::parse("nowhere", "g", "y.yaml").unwrap();
    let refused = store
        .put_config(&write(&nowhere, "y: 1", Expect::Md5(md5_hex("y: 0")), 1500))
        .await;
    assert!(
        matches!(refused, Err(StoreError::NamespaceNotFound(_))),
        "{refused:?}"
    );
    let next = store
        .put_config(&write(&key("after.yaml"), "a: 1", Expect::Any, 1500))
        .await
        .unwrap();
    assert_eq!(next.revision.get(), before + 1, "no sequence was taken");
    // Writers of the same key at once (the service serializes a key's writes; the store
    // must not rely on it): each lands, the later seeing the earlier.
    let twice = key("twice.yaml");
    let writers: Vec<_> = (0..6)
        .map(|i| {
            let store = store.clone();
            let w = write(&twice, &format!("t: {i}"), Expect::Any, 2000);
            tokio::spawn(async move { store.put_config(&w).await })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap().unwrap();
    }
    let (versions, total) = store
        .history(
            &twice,
            Page {
                number: 1,
                size: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!((versions.len(), total), (6, 6));
}

async fn big_contents_together_stay_within_a_statement(store: Arc<dyn Store>) {
    // Six contents of 3 MiB, 18 MiB together: more than MariaDB takes in one statement
    // by default (16 MiB), so an import's pages and a group of publishes must split.
    let big = |i: usize| format!("k{i}: {}\n", "x".repeat(3 * 1024 * 1024));
    let writes: Vec<ConfigWrite> = (0..6)
        .map(|i| write(&key(&format!("big{i}.yaml")), &big(i), Expect::Any, 1000))
        .collect();
    assert_eq!(store.import(&writes, &[]).await.unwrap().len(), 6);
    let writers: Vec<_> = (0..6)
        .map(|i| {
            let store = store.clone();
            let w = write(
                &key(&format!("big{i}.yaml")),
                &big(i + 10),
                Expect::Any,
                2000,
            );
            tokio::spawn(async move { store.put_config(&w).await })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap().unwrap();
    }
    let stored = store.load_configs().await.unwrap();
    assert_eq!(stored.len(), 6);
    assert!(stored.iter().all(|c| c.content.len() > 3 * 1024 * 1024));
}

async fn history_is_pruned_to_its_retention(store: Arc<dyn Store>) {
    let (a, b) = (key("a.yaml"), key("b.yaml"));
    for (i, at) in [1_000, 2_000, 3_000, 4_000].into_iter().enumerate() {
        store
            .put_config(&write(&a, &format!("a: {i}"), Expect::Any, at))
            .await
            .unwrap();
    }
    store
        .put_config(&write(&b, "b: 0", Expect::Any, 1_000))
        .await
        .unwrap();
    let public = Namespace::parse("public").unwrap();
    let revisions = |key: ConfigKey| {
        let store = store.clone();
        async move {
            let (entries, _) = store
                .history(
                    &key,
                    Page {
                        number: 1,
                        size: 100,
                    },
                )
                .await
                .unwrap();
            entries.iter().map(|e| e.created_at).collect::<Vec<_>>()
        }
    };
    assert_eq!(store.prune_history(&public, 0, None).await.unwrap(), 0);
    // At most three per config: a's oldest goes.
    assert_eq!(store.prune_history(&public, 3, None).await.unwrap(), 1);
    assert_eq!(revisions(a.clone()).await, [4_000, 3_000, 2_000]);
    // Older than 3.5 s goes, but each config's newest stays (b's only one, at 1 s).
    assert_eq!(
        store.prune_history(&public, 0, Some(3_500)).await.unwrap(),
        2
    );
    assert_eq!(revisions(a.clone()).await, [4_000]);
    assert_eq!(revisions(b.clone()).await, [1_000]);
    assert_eq!(store.get_config(&a).await.unwrap().unwrap().content, "a: 3");
}

async fn compare_and_set(store: Arc<dyn Store>) {
    let k = key("cas.yaml");
    store
        .put_config(&write(&k, "v1", Expect::Absent, 1))
        .await
        .unwrap();
    let again = store.put_config(&write(&k, "v1b", Expect::Absent, 2)).await;
    assert!(
        matches!(again, Err(StoreError::CasMismatch { .. })),
        "{again:?}"
    );
    let stale = store
        .put_config(&write(&k, "v2", Expect::Md5(md5_hex("nope")), 3))
        .await;
    match stale {
        Err(StoreError::CasMismatch { current, .. }) => assert_eq!(current, Some(md5_hex("v1"))),
        other => panic!("expected a CAS mismatch, got {other:?}"),
    }
    store
        .put_config(&write(&k, "v2", Expect::Md5(md5_hex("v1")), 4))
        .await
        .unwrap();
    let all = store.load_configs().await.unwrap();
    assert_eq!(all[0].content, "v2");
    // Nacos's expectation: this md5, or nothing there yet.
    let either = |content: &str, md5: &str, at| {
        write(
            &key("either"),
            content,
            Expect::Md5OrAbsent(md5_hex(md5)),
            at,
        )
    };
    store
        .put_config(&either("e1", "anything", 5))
        .await
        .unwrap();
    let stale = store.put_config(&either("e2", "anything", 6)).await;
    assert!(
        matches!(stale, Err(StoreError::CasMismatch { .. })),
        "{stale:?}"
    );
    store.put_config(&either("e2", "e1", 7)).await.unwrap();
    let (history, total) = store
        .history(
            &k,
            Page {
                number: 1,
                size: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(total, 2, "refused writes leave no history: {history:?}");
}

async fn history_and_changes(store: Arc<dyn Store>) {
    let k = key("h.yaml");
    let other = key("other.yaml");
    let mut revisions = Vec::new();
    for i in 0..5 {
        let r = store
            .put_config(&write(&k, &format!("v: {i}"), Expect::Any, i))
            .await
            .unwrap();
        revisions.push(r.revision);
        store
            .put_config(&write(&other, "x", Expect::Any, i))
            .await
            .unwrap();
    }
    let (page1, total) = store
        .history(&k, Page { number: 1, size: 2 })
        .await
        .unwrap();
    assert_eq!(total, 5);
    assert_eq!(
        page1.iter().map(|h| h.revision).collect::<Vec<_>>(),
        vec![revisions[4], revisions[3]]
    );
    let (page3, _) = store
        .history(&k, Page { number: 3, size: 2 })
        .await
        .unwrap();
    assert_eq!(page3.len(), 1);
    assert_eq!(page3[0].revision, revisions[0]);
    assert_eq!(page3[0].content, "", "listings carry no content");
    let before = store
        .history_before(&k, revisions[3])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (before.revision, before.content.as_str()),
        (revisions[2], "v: 2")
    );
    assert!(store
        .history_before(&k, revisions[0])
        .await
        .unwrap()
        .is_none());
    assert_eq!(page3[0].operator, "alice");
    assert_eq!(page3[0].source, "127.0.0.1");

    let one = store
        .history_entry(&k, revisions[2])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(one.content, "v: 2");
    assert_eq!(one.md5, md5_hex("v: 2"));
    // A revision of another config is not this config's history.
    let foreign = store.history_entry(&other, revisions[2]).await.unwrap();
    assert!(foreign.is_none());

    let changes = store.changes_since(0, 1000).await.unwrap();
    assert_eq!(changes.len(), 10);
    assert!(changes.windows(2).all(|w| w[0].seq < w[1].seq));
    let tail = store.changes_since(revisions[3].get(), 1000).await.unwrap();
    assert_eq!(tail.first().map(|c| c.key.clone()), Some(other.clone()));
    assert_eq!(store.changes_since(0, 3).await.unwrap().len(), 3);
}

async fn delete_records_history(store: Arc<dyn Store>) {
    let k = key("d.yaml");
    let missing = store
        .delete_config(&ConfigDelete {
            key: k.clone(),
            expect: Expect::Any,
            audit: audit(1),
        })
        .await;
    assert!(
        matches!(missing, Err(StoreError::ConfigNotFound(_))),
        "{missing:?}"
    );
    store
        .put_config(&write(&k, "x: 1", Expect::Any, 1))
        .await
        .unwrap();
    let cas = store
        .delete_config(&ConfigDelete {
            key: k.clone(),
            expect: Expect::Md5("wrong".into()),
            audit: audit(2),
        })
        .await;
    assert!(
        matches!(cas, Err(StoreError::CasMismatch { .. })),
        "{cas:?}"
    );
    let change = store
        .delete_config(&ConfigDelete {
            key: k.clone(),
            expect: Expect::Any,
            audit: audit(3),
        })
        .await
        .unwrap();
    assert_eq!(change.op, Op::Delete);
    assert!(store.load_configs().await.unwrap().is_empty());
    let (history, total) = store.history(&k, FIRST_TEN).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(history[0].op, Op::Delete);
    assert_eq!(history[0].revision, change.seq);
    let first = store
        .history_entry(&k, history[1].revision)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.content, "x: 1");
}

async fn namespaces(store: Arc<dyn Store>) {
    let names = |list: Vec<NamespaceRecord>| {
        list.into_iter()
            .map(|n| n.name.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(store.list_namespaces().await.unwrap()),
        vec!["public"]
    );
    let dev = Namespace::parse("dev").unwrap();
    let record = NamespaceRecord {
        name: dev.clone(),
        display_name: "Dev".into(),
        description: "Dev".into(),
        created_at: 5,
        apollo_anonymous: vec!["shop".into()],
        limits: NamespaceLimits {
            max_configs: Some(100),
            history_max_days: Some(0),
            ..NamespaceLimits::default()
        },
        require_review: true,
    };
    store.create_namespace(&record).await.unwrap();
    assert!(matches!(
        store.create_namespace(&record).await,
        Err(StoreError::NamespaceExists(_))
    ));
    assert_eq!(
        store.list_namespaces().await.unwrap()[0].display_name,
        "Dev"
    );
    assert_eq!(store.list_namespaces().await.unwrap()[0], record);
    let update = |display: Option<&str>, description: Option<&str>| NamespaceUpdate {
        display_name: display.map(str::to_owned),
        description: description.map(str::to_owned),
        ..NamespaceUpdate::default()
    };
    store
        .update_namespace(
            &dev,
            &update(Some("Development"), Some("Where changes start")),
        )
        .await
        .unwrap();
    store
        .update_namespace(&dev, &update(None, Some("Where changes begin")))
        .await
        .unwrap();
    let list = store.list_namespaces().await.unwrap();
    assert_eq!(list[0].name, dev);
    assert_eq!(list[0].display_name, "Development");
    assert_eq!(list[0].description, "Where changes begin");
    assert_eq!(list[0].apollo_anonymous, ["shop"], "kept when not named");
    assert!(list[0].require_review, "kept when not named");
    let reviewed = |on: bool| NamespaceUpdate {
        require_review: Some(on),
        ..NamespaceUpdate::default()
    };
    store
        .update_namespace(&dev, &reviewed(false))
        .await
        .unwrap();
    assert!(!store.list_namespaces().await.unwrap()[0].require_review);
    store.update_namespace(&dev, &reviewed(true)).await.unwrap();
    assert!(store.list_namespaces().await.unwrap()[0].require_review);
    let anonymous = NamespaceUpdate {
        apollo_anonymous: Some(vec!["shop".into(), "web-*".into()]),
        ..NamespaceUpdate::default()
    };
    store.update_namespace(&dev, &anonymous).await.unwrap();
    assert_eq!(
        store.list_namespaces().await.unwrap()[0].apollo_anonymous,
        ["shop", "web-*"]
    );
    let none = NamespaceUpdate {
        apollo_anonymous: Some(Vec::new()),
        ..NamespaceUpdate::default()
    };
    store.update_namespace(&dev, &none).await.unwrap();
    assert!(store.list_namespaces().await.unwrap()[0]
        .apollo_anonymous
        .is_empty());
    // Limits: set, kept when not named, and back to the node's default.
    let limits = NamespaceUpdate {
        limits: LimitsUpdate {
            max_configs: Some(None),
            max_total_bytes: Some(Some(1 << 20)),
            history_max_revisions: Some(Some(10)),
            ..LimitsUpdate::default()
        },
        ..NamespaceUpdate::default()
    };
    store.update_namespace(&dev, &limits).await.unwrap();
    assert_eq!(
        store.list_namespaces().await.unwrap()[0].limits,
        NamespaceLimits {
            max_configs: None,
            max_config_bytes: None,
            max_total_bytes: Some(1 << 20),
            history_max_revisions: Some(10),
            history_max_days: Some(0),
        }
    );

    let k = ConfigKey::new(dev.clone(), key("x").group, key("a.yaml").data_id);
    store
        .put_config(&write(&k, "a: 1", Expect::Any, 1))
        .await
        .unwrap();
    assert!(matches!(
        store.delete_namespace(&dev).await,
        Err(StoreError::NamespaceNotEmpty(_))
    ));
    store
        .delete_config(&ConfigDelete {
            key: k.clone(),
            expect: Expect::Any,
            audit: audit(2),
        })
        .await
        .unwrap();
    store.delete_namespace(&dev).await.unwrap();
    assert!(matches!(
        store.delete_namespace(&dev).await,
        Err(StoreError::NamespaceNotFound(_))
    ));
    assert!(matches!(
        store.update_namespace(&dev, &update(None, Some(""))).await,
        Err(StoreError::NamespaceNotFound(_))
    ));
    // Publishing into a namespace that does not exist is refused and leaves no trace.
    let orphan = store.put_config(&write(&k, "a: 1", Expect::Any, 3)).await;
    assert!(
        matches!(orphan, Err(StoreError::NamespaceNotFound(_))),
        "{orphan:?}"
    );
    assert!(store.load_configs().await.unwrap().is_empty());
}

async fn users(store: Arc<dyn Store>) {
    let bob = Username::parse("bob").unwrap();
    assert!(store.get_user(&bob).await.unwrap().is_none());
    let record = UserRecord {
        username: bob.clone(),
        password_hash: "hash-1".into(),
        role: cairn_core::Role::Admin,
        created_at: 1,
        password_changed_at: 1,
    };
    store.create_user(&record).await.unwrap();
    assert!(matches!(
        store.create_user(&record).await,
        Err(StoreError::UserExists(_))
    ));
    store.set_password(&bob, "hash-2", 9).await.unwrap();
    let got = store.get_user(&bob).await.unwrap().unwrap();
    assert_eq!(
        (got.password_hash.as_str(), got.password_changed_at),
        ("hash-2", 9)
    );
    assert_eq!(store.list_users().await.unwrap().len(), 1);
    store.set_role(&bob, cairn_core::Role::User).await.unwrap();
    store.set_role(&bob, cairn_core::Role::User).await.unwrap();
    let got = store.get_user(&bob).await.unwrap().unwrap();
    assert_eq!(got.role, cairn_core::Role::User);
    store.delete_user(&bob).await.unwrap();
    assert!(matches!(
        store.set_role(&bob, cairn_core::Role::Admin).await,
        Err(StoreError::UserNotFound(_))
    ));
    assert!(matches!(
        store.delete_user(&bob).await,
        Err(StoreError::UserNotFound(_))
    ));
    assert!(matches!(
        store.set_password(&bob, "h", 1).await,
        Err(StoreError::UserNotFound(_))
    ));
}

async fn concurrent_writers_get_distinct_revisions(store: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let k = key(&format!("c{}.yaml", i % 4));
            store
                .put_config(&write(&k, &format!("n: {i}"), Expect::Any, i))
                .await
                .unwrap()
                .revision
        }));
    }
    let mut revisions = Vec::new();
    for t in tasks {
        revisions.push(t.await.unwrap());
    }
    revisions.sort();
    revisions.dedup();
    assert_eq!(revisions.len(), 16);
    assert_eq!(store.changes_since(0, 100).await.unwrap().len(), 16);
    store.ping().await.unwrap();
}

async fn reads_one_config_and_the_last_sequence(store: Arc<dyn Store>) {
    assert_eq!(store.last_seq().await.unwrap(), 0);
    let k = key("one.yaml");
    assert!(store.get_config(&k).await.unwrap().is_none());
    let written = store
        .put_config(&write(&k, "a: 1", Expect::Any, 1))
        .await
        .unwrap();
    assert_eq!(store.get_config(&k).await.unwrap(), Some(written.clone()));
    assert_eq!(store.last_seq().await.unwrap(), written.revision.get());
    assert_eq!(store.settled_seq().await.unwrap(), written.revision.get());

    // Many at once, across groups, past a page, with keys that are not there.
    let mut keys = vec![k.clone(), key("absent.yaml")];
    let mut expected = vec![written];
    for i in 0..PAST_A_PAGE {
        let other = ConfigKey::parse(
            "public",
            if i % 2 == 0 { "a" } else { "b" },
            &format!("m{i}"),
        )
        .unwrap();
        let record = store
            .put_config(&write(&other, &format!("m: {i}"), Expect::Any, 2))
            .await
            .unwrap();
        keys.push(other);
        expected.push(record);
    }
    let asked: Vec<&ConfigKey> = keys.iter().collect();
    let mut found = store.get_configs(&asked).await.unwrap();
    found.sort_by(|a, b| a.key.cmp(&b.key));
    expected.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(found, expected);
    assert!(store.get_configs(&[]).await.unwrap().is_empty());
}

/// Configs written over two groups, so that one group's keys take more than a
/// statement's page (200).
const PAST_A_PAGE: usize = 2 * 200 + 1;

async fn names_are_case_sensitive(store: Arc<dyn Store>) {
    let lower = key("app.yaml");
    let upper = key("APP.yaml");
    store
        .put_config(&write(&lower, "a: 1", Expect::Absent, 1))
        .await
        .unwrap();
    store
        .put_config(&write(&upper, "a: 2", Expect::Absent, 2))
        .await
        .unwrap();
    assert_eq!(store.load_configs().await.unwrap().len(), 2);
}

async fn contents_round_trip_exactly(store: Arc<dyn Store>) {
    let k = key("unicode.txt");
    let content = "emoji 🪨, accents é, CJK 配置, NUL-free\ttabs\r\nCRLF\n".repeat(200);
    store
        .put_config(&write(&k, &content, Expect::Any, 1))
        .await
        .unwrap();
    assert_eq!(
        store.get_config(&k).await.unwrap().unwrap().content,
        content
    );
}

async fn nodes_and_pruning(store: Arc<dyn Store>) {
    let node = |id: &str, beat: i64, applied: i64| NodeRecord {
        id: id.into(),
        address: format!("http://{id}:8848"),
        started_at: 1,
        heartbeat_at: beat,
        applied_seq: applied,
        version: format!("0.{applied}"),
    };
    store.heartbeat(&node("a", 100, 0)).await.unwrap();
    store.heartbeat(&node("b", 100, 0)).await.unwrap();
    store.heartbeat(&node("a", 200, 5)).await.unwrap();
    store.heartbeat(&node("a", 200, 5)).await.unwrap();
    let nodes = store.nodes().await.unwrap();
    assert_eq!(nodes, vec![node("a", 200, 5), node("b", 100, 0)]);
    assert_eq!(store.remove_nodes(150).await.unwrap(), 1);
    store.remove_node("a").await.unwrap();
    assert!(store.nodes().await.unwrap().is_empty());

    let k = key("p.yaml");
    let mut revisions = Vec::new();
    for i in 0..4 {
        revisions.push(
            store
                .put_config(&write(&k, &format!("v{i}"), Expect::Any, i))
                .await
                .unwrap()
                .revision,
        );
    }
    assert_eq!(store.pruned_through().await.unwrap(), 0);
    assert_eq!(store.prune_changes(revisions[1].get()).await.unwrap(), 2);
    assert_eq!(store.pruned_through().await.unwrap(), revisions[1].get());
    let left = store.changes_since(0, 100).await.unwrap();
    assert_eq!(
        left.iter().map(|c| c.seq).collect::<Vec<_>>(),
        revisions[2..].to_vec()
    );
    // History is not the change log: it keeps everything.
    assert_eq!(
        store
            .history(
                &k,
                Page {
                    number: 1,
                    size: 10
                }
            )
            .await
            .unwrap()
            .1,
        4
    );
    assert_eq!(store.last_seq().await.unwrap(), revisions[3].get());
}

async fn shared_secrets_are_set_once(store: Arc<dyn Store>) {
    assert_eq!(
        store.shared_secret("token", "first").await.unwrap(),
        "first"
    );
    assert_eq!(
        store.shared_secret("token", "second").await.unwrap(),
        "first"
    );
}

async fn unset_metadata_keeps_the_stored_values(store: Arc<dyn Store>) {
    let k = key("meta.json");
    store
        .put_config(&write(&k, "a: 1", Expect::Any, 1))
        .await
        .unwrap();
    let bare = ConfigWrite {
        format: None,
        description: None,
        tags: None,
        ..write(&k, "a: 2", Expect::Any, 2)
    };
    let stored = store.put_config(&bare).await.unwrap();
    assert_eq!(stored.format, Format::Yaml, "kept, not the default");
    assert_eq!(stored.description, "desc");
    assert_eq!(stored.tags, vec!["team-a", "db"]);

    // Validated as one format while the stored one is another: refused.
    let stale = ConfigWrite {
        validated_as: Some(Format::Json),
        ..bare.clone()
    };
    assert!(matches!(
        store.put_config(&stale).await,
        Err(StoreError::Conflict(_))
    ));
    // A new config without a format takes the default.
    let new = ConfigWrite {
        key: key("new.txt"),
        ..bare
    };
    assert_eq!(store.put_config(&new).await.unwrap().format, Format::Text);
}

async fn gray_releases(store: Arc<dyn Store>) {
    let k = key("gray.yaml");
    let rules = GrayRules::parse(&["10.0.0.1".into()], &["zone=eu-1".into()]).unwrap();
    let gray = |content: &str, at| GrayWrite {
        key: k.clone(),
        content: content.into(),
        md5: md5_hex(content),
        format: None,
        validated_as: Some(Format::Yaml),
        rules: rules.clone(),
        audit: audit(at),
    };
    // Only an existing config can have a gray release.
    assert!(matches!(
        store.put_gray(&gray("a: 2", 1)).await,
        Err(StoreError::ConfigNotFound(_))
    ));
    let main = store
        .put_config(&write(&k, "a: 1", Expect::Any, 1))
        .await
        .unwrap();
    let first = store.put_gray(&gray("a: 2", 2)).await.unwrap();
    assert!(first.revision > main.revision);
    assert_eq!(first.format, Format::Yaml, "the main content's format");
    let second = store.put_gray(&gray("a: 3", 3)).await.unwrap();
    assert_eq!(
        store.load_grays().await.unwrap(),
        vec![second.clone()],
        "replaced, not added"
    );
    assert_eq!(store.get_gray(&k).await.unwrap(), Some(second.clone()));
    assert_eq!(store.get_gray(&k).await.unwrap().unwrap().rules, rules);

    // Promoting what was checked: a release replaced since is refused.
    let stale = store
        .promote_gray(&k, &Expect::Md5(md5_hex("a: 2")), &audit(4))
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    let promoted = store
        .promote_gray(&k, &Expect::Md5(second.md5.clone()), &audit(4))
        .await
        .unwrap();
    assert_eq!(promoted.content, "a: 3");
    assert!(promoted.revision > second.revision);
    assert_eq!(promoted.description, "desc", "metadata stays");
    assert_eq!(store.get_config(&k).await.unwrap(), Some(promoted.clone()));
    assert!(store.get_gray(&k).await.unwrap().is_none());
    assert!(matches!(
        store.promote_gray(&k, &Expect::Any, &audit(5)).await,
        Err(StoreError::GrayNotFound(_))
    ));
    assert!(matches!(
        store.abandon_gray(&k, &audit(5)).await,
        Err(StoreError::GrayNotFound(_))
    ));

    store.put_gray(&gray("a: 4", 6)).await.unwrap();
    let abandoned = store.abandon_gray(&k, &audit(7)).await.unwrap();
    assert_eq!(abandoned.op, Op::GrayAbandon);
    assert!(store.load_grays().await.unwrap().is_empty());
    assert_eq!(
        store.get_config(&k).await.unwrap().unwrap().content,
        "a: 3",
        "main untouched"
    );

    // Deleting the config drops its gray release too.
    store.put_gray(&gray("a: 5", 8)).await.unwrap();
    store
        .delete_config(&ConfigDelete {
            key: k.clone(),
            expect: Expect::Any,
            audit: audit(9),
        })
        .await
        .unwrap();
    assert!(store.get_gray(&k).await.unwrap().is_none());

    let (history, _) = store
        .history(
            &k,
            Page {
                number: 1,
                size: 20,
            },
        )
        .await
        .unwrap();
    let ops: Vec<Op> = history.iter().rev().map(|h| h.op).collect();
    assert_eq!(
        ops,
        [
            Op::Publish,
            Op::GrayPublish,
            Op::GrayPublish,
            Op::GrayPromote,
            Op::GrayPublish,
            Op::GrayAbandon,
            Op::GrayPublish,
            Op::Delete
        ]
    );
    assert!(
        history.iter().any(|h| h.comment.contains("10.0.0.1")),
        "rules recorded"
    );
    let ops: Vec<Op> = store
        .changes_since(0, 100)
        .await
        .unwrap()
        .iter()
        .map(|c| c.op)
        .collect();
    assert_eq!(ops.len(), 8);
}

async fn access_keys(store: Arc<dyn Store>) {
    let key = |id: &str| AccessKeyRecord {
        app_id: "shop".into(),
        id: id.into(),
        secret: format!("secret-{id}"),
        enabled: true,
        created_at: 1,
        namespaces: if id == "k2" {
            vec!["dev".into(), "test".into()]
        } else {
            Vec::new()
        },
    };
    store.create_access_key(&key("k1"), 2).await.unwrap();
    store.create_access_key(&key("k2"), 2).await.unwrap();
    assert!(matches!(
        store.create_access_key(&key("k3"), 2).await,
        Err(StoreError::Conflict(_))
    ));
    store
        .set_access_key_enabled("shop", "k1", false)
        .await
        .unwrap();
    store
        .set_access_key_enabled("shop", "k1", false)
        .await
        .unwrap();
    let keys = store.access_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert!(!keys.iter().find(|k| k.id == "k1").unwrap().enabled);
    assert_eq!(
        keys.iter().find(|k| k.id == "k2").unwrap().secret,
        "secret-k2"
    );
    assert_eq!(
        keys.iter().find(|k| k.id == "k2").unwrap().namespaces,
        ["dev", "test"]
    );
    assert!(keys
        .iter()
        .find(|k| k.id == "k1")
        .unwrap()
        .namespaces
        .is_empty());
    store.delete_access_key("shop", "k2").await.unwrap();
    assert!(matches!(
        store.delete_access_key("shop", "k2").await,
        Err(StoreError::AccessKeyNotFound(..))
    ));
    assert!(matches!(
        store.set_access_key_enabled("shop", "nope", true).await,
        Err(StoreError::AccessKeyNotFound(..))
    ));
}

async fn console_sessions(store: Arc<dyn Store>) {
    let session = |id: &str, expires_at: i64| SessionRecord {
        id_hash: id.into(),
        username: Username::parse("alice").unwrap(),
        created_at: 10,
        expires_at,
    };
    store.create_session(&session("a1", 100)).await.unwrap();
    store.create_session(&session("b2", 300)).await.unwrap();
    assert_eq!(store.session("a1").await.unwrap(), Some(session("a1", 100)));
    assert_eq!(store.session("A1").await.unwrap(), None, "ids are exact");
    assert_eq!(store.delete_expired_sessions(200).await.unwrap(), 1);
    assert_eq!(store.session("a1").await.unwrap(), None);
    store.delete_session("b2").await.unwrap();
    store.delete_session("b2").await.unwrap();
    assert_eq!(store.session("b2").await.unwrap(), None);
}

async fn grants_and_roles(store: Arc<dyn Store>) {
    use cairn_core::grant::{Level, Scope};
    use cairn_core::RoleName;
    let ann = Username::parse("ann").unwrap();
    store
        .create_user(&UserRecord {
            username: ann.clone(),
            password_hash: "h".into(),
            role: cairn_core::Role::User,
            created_at: 1,
            password_changed_at: 1,
        })
        .await
        .unwrap();
    let devs = RoleName::parse("devs").unwrap();
    let grant = |subject: Subject, scope: &str, level: Level| GrantRecord {
        subject,
        scope: {
            let parts: Vec<&str> = scope.split(':').collect();
            Scope::parse(parts[0], parts[1], parts[2]).unwrap()
        },
        level,
        created_at: 5,
        created_by: "admin".into(),
    };
    let to_ann = grant(Subject::User(ann.clone()), "dev:*:*", Level::Read);
    store.put_grant(&to_ann).await.unwrap();
    // The same scope again replaces the level.
    let raised = grant(Subject::User(ann.clone()), "dev:*:*", Level::Write);
    store.put_grant(&raised).await.unwrap();
    let to_devs = grant(
        Subject::Role(devs.clone()),
        "prod:app-*:*.yaml",
        Level::ReadSecret,
    );
    store.put_grant(&to_devs).await.unwrap();
    let all = store.grants().await.unwrap();
    assert_eq!(
        all,
        vec![to_devs.clone(), raised.clone()],
        "ordered by subject"
    );

    let member = RoleMember {
        role: devs.clone(),
        username: ann.clone(),
        created_at: 6,
    };
    store.add_role_member(&member).await.unwrap();
    store.add_role_member(&member).await.unwrap();
    assert_eq!(store.role_members().await.unwrap(), vec![member.clone()]);
    let ghost = RoleMember {
        username: Username::parse("ghost").unwrap(),
        ..member.clone()
    };
    assert!(matches!(
        store.add_role_member(&ghost).await,
        Err(StoreError::UserNotFound(_))
    ));

    assert!(store
        .delete_grant(&raised.subject, &raised.scope)
        .await
        .unwrap());
    assert!(!store
        .delete_grant(&raised.subject, &raised.scope)
        .await
        .unwrap());
    assert!(store.remove_role_member(&devs, &ann).await.unwrap());
    assert!(!store.remove_role_member(&devs, &ann).await.unwrap());
    store.add_role_member(&member).await.unwrap();
    assert!(store.delete_role(&devs).await.unwrap());
    assert!(!store.delete_role(&devs).await.unwrap());
    assert!(store.grants().await.unwrap().is_empty());
    assert!(store.role_members().await.unwrap().is_empty());

    // A deleted user's grants and memberships go with them.
    store.put_grant(&raised).await.unwrap();
    store.add_role_member(&member).await.unwrap();
    store.delete_user(&ann).await.unwrap();
    assert!(store.grants().await.unwrap().is_empty());
    assert!(store.role_members().await.unwrap().is_empty());
}

/// An installation from before grants: every user could read and write everywhere, and
/// after the upgrade each still can, through a grant an admin can narrow.
#[tokio::test]
async fn an_upgrade_gives_existing_users_what_they_could_do_before() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cairn.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let mut before = sqlx::migrate::Migrator::new(std::path::Path::new("migrations/sqlite"))
        .await
        .unwrap();
    let first_with_grants = before
        .migrations
        .iter()
        .position(|m| m.description.contains("grants"))
        .expect("a grants migration");
    before.migrations = before.migrations[..first_with_grants].to_vec().into();
    before.run(&pool).await.unwrap();
    for (name, role) in [("old-user", "user"), ("old-admin", "admin")] {
        sqlx::query(
            "INSERT INTO users (username, password_hash, role, created_at, password_changed_at) \
             VALUES (?, 'h', ?, 1, 1)",
        )
        .bind(name)
        .bind(role)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;
    let store = SqlStore::sqlite(&path).await.unwrap();
    let grants = store.grants().await.unwrap();
    assert_eq!(grants.len(), 1, "admins need none: {grants:?}");
    assert_eq!(
        grants[0].subject,
        Subject::User(Username::parse("old-user").unwrap())
    );
    assert_eq!(grants[0].scope.to_string(), "*:*:*");
    assert_eq!(grants[0].level, cairn_core::grant::Level::Write);
    assert_eq!(grants[0].created_by, "upgrade");
}

async fn audit_log(store: Arc<dyn Store>) {
    let k = key("audited.yaml");
    store
        .put_config(&write(&k, "a: 1", Expect::Any, 10))
        .await
        .unwrap();
    let entry = |at: i64, actor: &str, action: &str, result: &str| AuditRecord {
        at,
        actor: actor.into(),
        source: "10.0.0.1".into(),
        surface: "native".into(),
        action: action.into(),
        target: "user bob".into(),
        result: result.into(),
        ..AuditRecord::default()
    };
    store
        .append_audit(&[
            entry(20, "admin", "user.create", "ok"),
            entry(30, "bob", "login", "denied"),
            entry(40, "admin", "access_key.create", "ok"),
        ])
        .await
        .unwrap();
    let page = Page {
        number: 1,
        size: 10,
    };
    let (all, total) = store.audit(&AuditQuery::default(), page).await.unwrap();
    assert_eq!(total, 4);
    let actions: Vec<&str> = all.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "access_key.create",
            "login",
            "user.create",
            "config.publish"
        ],
        "newest first"
    );
    let publish = &all[3];
    assert_eq!(
        (publish.actor.as_str(), publish.target.as_str(), publish.at),
        ("alice", "public/DEFAULT_GROUP/audited.yaml", 10)
    );
    assert_eq!(publish.md5_after.as_deref(), Some(md5_hex("a: 1").as_str()));
    assert_eq!(publish.md5_before, None);
    let only = |query: AuditQuery| {
        let store = store.clone();
        async move { store.audit(&query, page).await.unwrap().1 }
    };
    let family = AuditQuery {
        action: Some("config".into()),
        ..AuditQuery::default()
    };
    assert_eq!(only(family).await, 1);
    let denied = AuditQuery {
        result: Some("denied".into()),
        actor: Some("bob".into()),
        ..AuditQuery::default()
    };
    assert_eq!(only(denied).await, 1);
    let window = AuditQuery {
        from: Some(15),
        to: Some(30),
        ..AuditQuery::default()
    };
    assert_eq!(only(window).await, 1);
    // A wildcard in a filter is text, not a pattern.
    let wild = AuditQuery {
        action: Some("%".into()),
        ..AuditQuery::default()
    };
    assert_eq!(only(wild).await, 0);
    let underscore = AuditQuery {
        action: Some("access_key".into()),
        ..AuditQuery::default()
    };
    assert_eq!(
        only(underscore).await,
        1,
        "a family whose name has an underscore"
    );
    assert_eq!(store.prune_audit(25).await.unwrap(), 2);
    assert_eq!(only(AuditQuery::default()).await, 2);
}

async fn service_tokens(store: Arc<dyn Store>) {
    use cairn_core::grant::Level;
    let token = TokenRecord {
        name: "ci".into(),
        digest: "d1".into(),
        scopes: vec![("dev".into(), Level::Read), ("app-*".into(), Level::Write)],
        publish_without_review: true,
        created_by: "admin".into(),
        created_at: 5,
        last_used_at: None,
    };
    store.create_token(&token).await.unwrap();
    assert!(matches!(
        store.create_token(&token).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.tokens().await.unwrap(), vec![token.clone()]);
    store
        .touch_tokens(&[("ci".into(), 9), ("gone".into(), 9)])
        .await
        .unwrap();
    store.touch_tokens(&[("ci".into(), 7)]).await.unwrap();
    assert_eq!(
        store.tokens().await.unwrap()[0].last_used_at,
        Some(9),
        "a later use is never overwritten by an earlier one"
    );
    assert!(store.delete_token("ci").await.unwrap());
    assert!(!store.delete_token("ci").await.unwrap());
    assert!(store.tokens().await.unwrap().is_empty());
}

macro_rules! suite {
    ($backend:ident, $open:path) => {
        mod $backend {
            use super::*;

            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test]
                    async fn $name() {
                        if let Some((store, scratch)) = $open().await {
                            // Run apart, so that a failing case still closes its
                            // connections: a scratch database with connections open
                            // cannot be dropped, and the suite would wait on it.
                            let ran = tokio::spawn(super::$name(store.clone())).await;
                            store.close().await;
                            scratch.finish().await;
                            if let Err(failed) = ran {
                                std::panic::resume_unwind(failed.into_panic());
                            }
                        }
                    }
                };
            }

            case!(publish_then_load);
            case!(the_sensitive_mark_is_kept_until_changed);
            case!(compare_and_set);
            case!(imports_land_whole_or_not_at_all);
            case!(a_large_import_records_each_config_as_a_publish_does);
            case!(an_import_writes_past_versions_as_history_only);
            case!(webhook_deliveries_are_made_once_and_taken_once);
            case!(change_requests_move_once_and_keep_their_timeline);
            case!(an_emergency_release_is_flagged_in_history_and_audit);
            case!(schemas_are_versioned_audited_and_removed);
            case!(concurrent_publishes_fail_alone);
            case!(other_writes_go_between_streaming_publishes);
            case!(concurrent_replacements_keep_what_they_leave_out);
            case!(big_contents_together_stay_within_a_statement);
            case!(history_is_pruned_to_its_retention);
            case!(history_and_changes);
            case!(delete_records_history);
            case!(namespaces);
            case!(users);
            case!(concurrent_writers_get_distinct_revisions);
            case!(reads_one_config_and_the_last_sequence);
            case!(names_are_case_sensitive);
            case!(contents_round_trip_exactly);
            case!(nodes_and_pruning);
            case!(shared_secrets_are_set_once);
            case!(unset_metadata_keeps_the_stored_values);
            case!(gray_releases);
            case!(access_keys);
            case!(console_sessions);
            case!(grants_and_roles);
            case!(audit_log);
            case!(service_tokens);
        }
    };
}

/// Where a test's store lives, removed when the test is done.
enum Place {
    Dir(tempfile::TempDir),
    Database(scratch::Scratch),
}

impl Place {
    async fn finish(self) {
        match self {
            Place::Dir(dir) => drop(dir),
            Place::Database(db) => db.drop_database().await,
        }
    }
}

async fn open_sqlite() -> Option<(Arc<dyn Store>, Place)> {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::sqlite(&dir.path().join("cairn.db"))
        .await
        .unwrap();
    Some((Arc::new(store), Place::Dir(dir)))
}

async fn open_postgres() -> Option<(Arc<dyn Store>, Place)> {
    let db = scratch::Scratch::create(scratch::Engine::Postgres).await?;
    let store = SqlStore::postgres(&db.url).await.unwrap();
    Some((Arc::new(store), Place::Database(db)))
}

async fn open_mysql() -> Option<(Arc<dyn Store>, Place)> {
    let db = scratch::Scratch::create(scratch::Engine::MySql).await?;
    let store = SqlStore::mysql(&db.url).await.unwrap();
    Some((Arc::new(store), Place::Database(db)))
}

fn sealer() -> Option<Arc<Sealer>> {
    Some(Arc::new(
        Sealer::from_key_text(&Sealer::generate().unwrap()).unwrap(),
    ))
}

/// Every case again with contents sealed at rest: nothing a store does may depend on
/// reading contents in the clear.
async fn open_sqlite_sealed() -> Option<(Arc<dyn Store>, Place)> {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::sqlite(&dir.path().join("cairn.db"))
        .await
        .unwrap()
        .with_sealer(sealer());
    Some((Arc::new(store), Place::Dir(dir)))
}

/// On MariaDB, which returns what an insert took, this one writes as on MySQL, which
/// does not: both ways are tested against one server.
async fn open_mysql_sealed() -> Option<(Arc<dyn Store>, Place)> {
    let db = scratch::Scratch::create(scratch::Engine::MySql).await?;
    let store = SqlStore::mysql(&db.url)
        .await
        .unwrap()
        .as_on_mysql()
        .with_sealer(sealer());
    Some((Arc::new(store), Place::Database(db)))
}

suite!(sqlite, open_sqlite);
suite!(postgres, open_postgres);
suite!(mysql, open_mysql);
suite!(sqlite_sealed, open_sqlite_sealed);
suite!(mysql_sealed, open_mysql_sealed);

/// One database opened again and again, each time with the keys of a step of a key
/// rotation.
enum Reopen {
    Sqlite(std::path::PathBuf),
    Postgres(String),
    MySql(String),
}

impl Reopen {
    async fn open(&self, keys: &[&str]) -> Arc<dyn Store> {
        let store = match self {
            Reopen::Sqlite(path) => SqlStore::sqlite(path).await,
            Reopen::Postgres(url) => SqlStore::postgres(url).await,
            Reopen::MySql(url) => SqlStore::mysql(url).await,
        }
        .unwrap();
        let sealer = keys.split_first().map(|(current, previous)| {
            let mut sealer = Sealer::from_key_text(current).unwrap();
            if let Some(previous) = previous.first() {
                sealer = sealer.with_previous(Sealer::from_key_text(previous).unwrap());
            }
            Arc::new(sealer)
        });
        Arc::new(store.with_sealer(sealer))
    }
}

/// Values written in the clear and under an old key are, after a rotation, all sealed
/// under the new key alone; the old key then opens nothing.
async fn a_key_rotation_moves_everything_to_the_new_key(db: Reopen) {
    let (old, new) = (Sealer::generate().unwrap(), Sealer::generate().unwrap());
    let (plain, sealed) = (key("plain.yaml"), key("sealed.yaml"));
    let store = db.open(&[]).await;
    store
        .put_config(&write(&plain, "p: 1", Expect::Any, 1))
        .await
        .unwrap();
    store.close().await;

    let store = db.open(&[&old]).await;
    store
        .put_config(&write(&sealed, "s: 1", Expect::Any, 2))
        .await
        .unwrap();
    store
        .put_config(&write(&sealed, "s: 2", Expect::Any, 3))
        .await
        .unwrap();
    let rules = GrayRules::parse(&["10.0.0.1".into()], &[]).unwrap();
    store
        .put_gray(&GrayWrite {
            key: sealed.clone(),
            content: "s: 3".into(),
            md5: md5_hex("s: 3"),
            format: None,
            validated_as: None,
            rules,
            audit: audit(4),
        })
        .await
        .unwrap();
    store.shared_secret("token", "signing").await.unwrap();
    let access_key = AccessKeyRecord {
        app_id: "shop".into(),
        id: "k1".into(),
        secret: "shop-secret".into(),
        enabled: true,
        created_at: 1,
        namespaces: Vec::new(),
    };
    store.create_access_key(&access_key, 5).await.unwrap();
    let hook = store
        .add_webhook(&WebhookWrite {
            namespace: Namespace::public(),
            url: "https://hooks.example.com/".into(),
            secret: "hook-secret-of-some-length".into(),
            events: Vec::new(),
            group: String::new(),
            data_id: String::new(),
            audit: audit(6),
        })
        .await
        .unwrap();
    let configs = store.load_configs().await.unwrap();
    let grays = store.load_grays().await.unwrap();
    let (history, _) = store
        .history(
            &sealed,
            Page {
                number: 1,
                size: 10,
            },
        )
        .await
        .unwrap();
    store.close().await;

    // During the rotation both keys open what they sealed.
    let store = db.open(&[&new, &old]).await;
    assert_eq!(store.load_configs().await.unwrap(), configs);
    let done = store.reseal().await.unwrap();
    // Sealed under the old key: sealed.yaml, its three history entries (two publishes
    // and the gray step), its gray release, the secret, the access key and the webhook
    // secret; in the clear: plain.yaml and its history entry.
    assert_eq!(
        (done.rewrapped, done.sealed, done.current, done.raced),
        (8, 2, 0, 0),
        "{done:?}"
    );
    let again = store.reseal().await.unwrap();
    assert_eq!((again.rewrapped, again.sealed, again.current), (0, 0, 10));
    store.close().await;

    let store = db.open(&[&new]).await;
    assert_eq!(store.load_configs().await.unwrap(), configs);
    assert_eq!(store.load_grays().await.unwrap(), grays);
    for entry in &history {
        let read = store
            .history_entry(&sealed, entry.revision)
            .await
            .unwrap()
            .unwrap();
        assert!(read.content.starts_with("s: "), "{read:?}");
    }
    assert_eq!(
        store.shared_secret("token", "other").await.unwrap(),
        "signing"
    );
    assert_eq!(store.access_keys().await.unwrap()[0].secret, "shop-secret");
    assert_eq!(store.webhook(hook.id).await.unwrap(), Some(hook));
    store.close().await;

    let store = db.open(&[&old]).await;
    let refused = store.load_configs().await.unwrap_err();
    assert!(refused.to_string().contains("does not open"), "{refused}");
    store.close().await;
}

#[tokio::test]
async fn key_rotation_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    a_key_rotation_moves_everything_to_the_new_key(Reopen::Sqlite(dir.path().join("cairn.db")))
        .await;
}

#[tokio::test]
async fn key_rotation_postgres() {
    if let Some(db) = scratch::Scratch::create(scratch::Engine::Postgres).await {
        a_key_rotation_moves_everything_to_the_new_key(Reopen::Postgres(db.url.clone())).await;
        db.drop_database().await;
    }
}

#[tokio::test]
async fn key_rotation_mysql() {
    if let Some(db) = scratch::Scratch::create(scratch::Engine::MySql).await {
        a_key_rotation_moves_everything_to_the_new_key(Reopen::MySql(db.url.clone())).await;
        db.drop_database().await;
    }
}

/// Two nodes' stores on one database publishing at once: their transactions overlap,
/// yet compare-and-set holds across them, no change is lost, and every acknowledged
/// change is in the log at or below what the stores call settled.
async fn two_stores_publish_at_once(one: Arc<dyn Store>, two: Arc<dyn Store>) {
    let counter = key("counter.yaml");
    one.put_config(&write(&counter, "n: 0", Expect::Any, 1))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let store = if i % 2 == 0 { one.clone() } else { two.clone() };
            let counter = counter.clone();
            tokio::spawn(async move {
                // Each writer publishes a config of its own, and increments the shared
                // counter by compare-and-set, retrying when another got in first.
                let own = key(&format!("own{i}.yaml"));
                let mut revisions = Vec::new();
                for round in 0..5 {
                    let mine = write(&own, &format!("r: {round}"), Expect::Any, 10);
                    revisions.push(store.put_config(&mine).await.unwrap().revision);
                    loop {
                        let current = store.get_config(&counter).await.unwrap().unwrap();
                        let n: u32 = current.content["n: ".len()..].parse().unwrap();
                        let next = format!("n: {}", n + 1);
                        let expect = Expect::Md5(current.md5.clone());
                        match store.put_config(&write(&counter, &next, expect, 10)).await {
                            Ok(record) => {
                                revisions.push(record.revision);
                                break;
                            }
                            Err(StoreError::CasMismatch { .. }) => continue,
                            Err(e) => panic!("an increment failed: {e}"),
                        }
                    }
                }
                revisions
            })
        })
        .collect();
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.unwrap());
    }
    let now = one.get_config(&counter).await.unwrap().unwrap();
    assert_eq!(now.content, "n: 60", "no increment lost");
    let (_, total) = two.history(&counter, FIRST_TEN).await.unwrap();
    assert_eq!(total, 61, "each increment once in history");
    acknowledged.sort();
    acknowledged.dedup();
    assert_eq!(acknowledged.len(), 120, "each write its own revision");

    let settled = two.settled_seq().await.unwrap();
    assert!(settled >= acknowledged.last().unwrap().get());
    let logged: std::collections::HashSet<i64> = one
        .changes_since(0, 1000)
        .await
        .unwrap()
        .iter()
        .map(|c| c.seq.get())
        .collect();
    assert!(acknowledged.iter().all(|r| logged.contains(&r.get())));
}

/// Two nodes' stores creating the same new configs at once, none of them asking for
/// anything of what is stored: every write lands, none is refused as a conflict, and
/// each config ends at its newest revision with every write in its history.
async fn two_stores_create_the_same_configs(one: Arc<dyn Store>, two: Arc<dyn Store>) {
    let keys: Vec<ConfigKey> = (0..10).map(|i| key(&format!("fresh{i}.yaml"))).collect();
    let tasks: Vec<_> = (0..8)
        .map(|w| {
            let store = if w % 2 == 0 { one.clone() } else { two.clone() };
            let keys = keys.clone();
            tokio::spawn(async move {
                let mut written = Vec::new();
                for k in &keys {
                    let record = store
                        .put_config(&write(k, &format!("w: {w}"), Expect::Any, 10))
                        .await
                        .unwrap_or_else(|e| panic!("writer {w} on {k}: {e}"));
                    written.push((k.clone(), record.revision));
                }
                written
            })
        })
        .collect();
    let mut newest: std::collections::HashMap<ConfigKey, Revision> = Default::default();
    for task in tasks {
        for (k, revision) in task.await.unwrap() {
            let at = newest.entry(k).or_insert(revision);
            *at = (*at).max(revision);
        }
    }
    for k in &keys {
        let stored = one.get_config(k).await.unwrap().unwrap();
        assert_eq!(stored.revision, newest[k], "{k} at its newest write");
        let (_, total) = two.history(k, FIRST_TEN).await.unwrap();
        assert_eq!(total, 8, "{k}: every write in history");
    }
}

/// The sequences in the change log after `start`.
async fn logged_since(store: &Arc<dyn Store>, start: i64) -> Vec<i64> {
    let changes = store.changes_since(start, 10).await.unwrap();
    changes.iter().map(|c| c.seq.get()).collect()
}

/// A publish in flight on another connection (its sequence taken, not yet committed)
/// while a later publish commits: the log shows the later one with a gap before it,
/// and the settled sequence is given only once the one in flight has ended.
async fn a_publish_in_flight_holds_the_settled_sequence_back(
    engine: scratch::Engine,
    url: &str,
    store: Arc<dyn Store>,
) {
    use sqlx::Connection as _;
    let start = store.last_seq().await.unwrap();
    let mut held = sqlx::AnyConnection::connect(url).await.unwrap();
    let mut tx = held.begin().await.unwrap();
    let (lock, insert) = match engine {
        scratch::Engine::Postgres => (
            "SELECT pg_advisory_xact_lock_shared(426836062830)",
            "INSERT INTO change_log (namespace, grp, data_id, op, md5, created_at) \
             VALUES ('public', 'DEFAULT_GROUP', 'held.yaml', 'publish', 'x', 1) RETURNING seq",
        ),
        scratch::Engine::MySql => (
            "SELECT id FROM write_lock WHERE id = 1 LOCK IN SHARE MODE",
            "INSERT INTO change_log (namespace, grp, data_id, op, md5, created_at) \
             VALUES ('public', 'DEFAULT_GROUP', 'held.yaml', 'publish', 'x', 1)",
        ),
    };
    sqlx::query(lock).fetch_all(&mut *tx).await.unwrap();
    let held_seq: i64 = match engine {
        scratch::Engine::Postgres => sqlx::query_scalar(insert)
            .fetch_one(&mut *tx)
            .await
            .unwrap(),
        scratch::Engine::MySql => {
            sqlx::query(insert).execute(&mut *tx).await.unwrap();
            sqlx::query_scalar("SELECT CAST(LAST_INSERT_ID() AS SIGNED)")
                .fetch_one(&mut *tx)
                .await
                .unwrap()
        }
    };

    // Not held up by the other publish: they share the write lock.
    let later = store
        .put_config(&write(&key("later.yaml"), "l: 1", Expect::Any, 2))
        .await
        .unwrap()
        .revision
        .get();
    assert!(later > held_seq);
    let logged = logged_since(&store, start).await;
    assert_eq!(logged, [later], "the held sequence is not in the log yet");

    let settling = tokio::spawn({
        let store = store.clone();
        async move { store.settled_seq().await.unwrap() }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!settling.is_finished(), "waits for the publish in flight");
    tx.commit().await.unwrap();
    let settled = settling.await.unwrap();
    assert!(settled >= later);
    let logged = logged_since(&store, start).await;
    assert_eq!(logged, [held_seq, later]);
}

async fn overlapping_publishes(engine: scratch::Engine) {
    let Some(db) = scratch::Scratch::create(engine).await else {
        return;
    };
    let open = || async {
        let store = match engine {
            scratch::Engine::Postgres => SqlStore::postgres(&db.url).await,
            scratch::Engine::MySql => SqlStore::mysql(&db.url).await,
        };
        Arc::new(store.unwrap()) as Arc<dyn Store>
    };
    let (one, two) = (open().await, open().await);
    two_stores_publish_at_once(one.clone(), two.clone()).await;
    two_stores_create_the_same_configs(one.clone(), two).await;
    a_publish_in_flight_holds_the_settled_sequence_back(engine, &db.url, one).await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_publishes_postgres() {
    overlapping_publishes(scratch::Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_publishes_mysql() {
    overlapping_publishes(scratch::Engine::MySql).await;
}

/// Another node's tail is woken by every publish, though commits close together share one
/// notification: the last of them is told too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_wake_other_nodes_postgres() {
    use std::time::Duration;
    let Some(db) = scratch::Scratch::create(scratch::Engine::Postgres).await else {
        return;
    };
    let writer = SqlStore::postgres(&db.url).await.unwrap();
    let other = SqlStore::postgres(&db.url).await.unwrap();
    let mut signal = other
        .change_signal()
        .await
        .unwrap()
        .expect("PostgreSQL wakes other nodes");
    let woken = Duration::from_secs(2);
    // Each publish comes right after the last one's notification: after the first few,
    // closer together than a stream's spacing, so most are told only once it passed.
    for round in 0..24 {
        let content = format!("round {round}");
        writer
            .put_config(&write(&key("woken.txt"), &content, Expect::Any, round))
            .await
            .unwrap();
        tokio::time::timeout(woken, signal.wait())
            .await
            .unwrap_or_else(|_| panic!("publish {round} did not wake the other node"))
            .unwrap();
    }
    db.drop_database().await;
}
