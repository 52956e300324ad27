//! Store tests on real sled files in a temp directory.

use std::io::Write;

use super::*;
use crate::engine::{EventKind, FreezeChange, Page, TierRecord};
use crate::spec::Severity;

fn freeze_event(service: &str, at: Millis) -> Event {
    Event {
        at,
        kind: EventKind::Freeze(FreezeChange {
            service: service.to_string(),
            frozen_by: Vec::new(),
            budgets: Vec::new(),
            freeze_below: 0.0,
            unfreeze_above: 0.1,
            since: at,
        }),
    }
}

fn window(slo: &str, pages: Vec<Page>) -> WindowRecord {
    WindowRecord {
        slo: slo.to_string(),
        fingerprint: 42,
        header: CountersHeader {
            cum: [1.5, 9.0],
            origin: Some(10),
            now: 20,
            levels: vec![(60_000, 3, 7)],
            open: Some([[1.0, 2.0]; 4]),
            samples: None,
        },
        pages,
        replaces_all: false,
    }
}

#[tokio::test]
async fn state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let transitions = vec![
        Transition::Slo {
            id: "svc/a".into(),
            tiers: vec![TierRecord { severity: Severity::Page, firing_since: Some(5), fired_condition: 1 }],
            no_data_since: Some(3),
        },
        Transition::Service { name: "svc".into(), frozen_since: Some(5) },
    ];
    let page = Page {
        level: 0,
        index: 0,
        slots: vec![[1.0, 2.0], [f64::MIN_POSITIVE, 1e300], [0.1, 0.2]],
        detail: vec![[[0, 1, 2, 3], [4, 5, 6, 255]]; 3],
    };
    let series = SeriesRecord { source: "http://t/metrics".into(), series: "req{a=\"b\"}".into(), at: 9, value: 3.5 };
    {
        let store = Store::open(dir.path()).unwrap();
        store.commit(&[freeze_event("svc", 5)], &transitions, &[]).await.unwrap();
        store.save(&[window("svc/a", vec![page.clone()])], std::slice::from_ref(&series)).await.unwrap();
    }
    let store = super::reopen_for_test(dir.path()).unwrap();
    let restored = store.load().unwrap();
    assert_eq!(restored.windows, vec![window("svc/a", vec![page])]);
    assert_eq!(restored.transitions.len(), 2);
    assert!(restored.transitions.iter().all(|t| transitions.contains(t)));
    assert_eq!(restored.series, vec![series]);
    assert_eq!(store.events(None, 0, 10).unwrap(), vec![freeze_event("svc", 5)]);
}

#[tokio::test]
async fn later_pages_overwrite_earlier_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let old = plain_page(0, 1, 1.0);
    let new = plain_page(0, 1, 2.0);
    store.save(&[window("s/x", vec![old])], &[]).await.unwrap();
    store.save(&[window("s/x", vec![new.clone()])], &[]).await.unwrap();
    assert_eq!(store.load().unwrap().windows[0].pages, vec![new]);
}

fn plain_page(level: usize, index: usize, value: f64) -> Page {
    Page { level, index, slots: vec![[value, value]], detail: Vec::new() }
}

#[tokio::test]
async fn a_replanned_window_replaces_every_stored_page() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let old_plan = (0..4).map(|i| plain_page(1, i, 1.0)).collect();
    store.save(&[window("s/x", old_plan)], &[]).await.unwrap();
    let new_plan = vec![plain_page(0, 0, 2.0), plain_page(1, 0, 2.0)];
    store.save(&[WindowRecord { replaces_all: true, ..window("s/x", new_plan.clone()) }], &[]).await.unwrap();
    assert_eq!(store.load().unwrap().windows[0].pages, new_plan);
}

#[tokio::test]
async fn a_schema_1_store_is_migrated_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let header = serde_json::json!({
        "fingerprint": 42,
        "header": { "cum": [1.5, 9.0], "origin": 10, "now": 20, "levels": [[60_000, 3, 7]] }
    });
    let slots = [[3.0, 4.0], [5.0, 1e6], [5.5, f64::NAN]];
    {
        let db = sled::open(dir.path()).unwrap();
        db.insert(SCHEMA_KEY, b"1").unwrap();
        for slo in ["s/x", "s/y"] {
            db.insert(format!("v1/slo/{slo}/hdr"), serde_json::to_vec(&header).unwrap()).unwrap();
            let raw: Vec<u8> = slots.iter().flatten().flat_map(|v| v.to_le_bytes()).collect();
            db.insert(format!("v1/slo/{slo}/page/00/01"), raw).unwrap();
        }
        db.flush().unwrap();
    }
    let store = super::reopen_for_test(dir.path()).unwrap();
    let windows = store.load().unwrap().windows;
    assert_eq!(windows.iter().map(|w| w.slo.as_str()).collect::<Vec<_>>(), ["s/x", "s/y"]);
    for window in &windows {
        assert_eq!(window.header.open, None);
        let page = &window.pages[0];
        assert_eq!((page.level, page.index, page.detail.len()), (0, 1, 0));
        let bits = |s: &[[f64; 2]]| s.iter().flatten().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&page.slots), bits(&slots));
    }
    assert_eq!(store.db().unwrap().get(SCHEMA_KEY).unwrap().as_deref(), Some(SCHEMA_VERSION.to_string().as_bytes()));
    assert_eq!(store.db().unwrap().scan_prefix("v1/slo/").count(), 0, "schema-1 records moved, not copied");
}

#[test]
fn pages_round_trip_exactly_and_pack_counts_small() {
    let odd = [0.0, -0.0, 0.5, -3.0, 1e300, f64::MIN_POSITIVE, f64::INFINITY, f64::NAN, 2f64.powi(53) + 2.0];
    let mut slots: Vec<[f64; 2]> = (0..64).map(|i| [1e6 + (i * 17) as f64, 5e8 + (i * i * 900) as f64]).collect();
    slots.extend(odd.iter().zip(odd.iter().rev()).map(|(&a, &b)| [a, b]));
    slots.push([-7.0, 3.0]);
    for detail in [Vec::new(), vec![[[1, 2, 3, 255], [0, 9, 80, 200]]; slots.len()]] {
        let page = Page { level: 2, index: 13, slots: slots.clone(), detail };
        let decoded = page::decode(2, 13, &page::encode(&page)).unwrap();
        let bits = |p: &Page| p.slots.iter().flatten().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&decoded), bits(&page));
        assert_eq!(decoded.detail, page.detail);
    }
    // A page of a 10-events-a-second SLO: minute increases of ~600 and ~6, a ring's wrap.
    let counts: Vec<[f64; 2]> = (0..64).map(|i| [((i + 40) % 64 * 6) as f64, ((i + 40) % 64 * 600) as f64]).collect();
    let packed = page::encode(&Page { level: 0, index: 0, slots: counts, detail: Vec::new() }).len();
    assert!(packed * 4 < 64 * 16, "{packed} bytes");
}

#[test]
fn a_damaged_page_is_an_error_not_a_panic() {
    let page = Page { level: 0, index: 0, slots: vec![[1.0, 2.0], [3.5, 4.0]], detail: vec![[[0; 4]; 2]; 2] };
    let bytes = page::encode(&page);
    for cut in 0..bytes.len() {
        assert!(page::decode(0, 0, &bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(page::decode(0, 0, &longer), Err(page::PageError::Trailing(1)));
    assert_eq!(page::decode(0, 0, &[0x80, 0xff, 0xff, 0xff, 0x0f]), Err(page::PageError::Flags(0x80)));
}

#[tokio::test]
async fn events_filter_by_service_and_time_and_prune() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let events = [freeze_event("a", 100), freeze_event("b", 200), freeze_event("a", 300)];
    store.commit(&events, &[], &[]).await.unwrap();
    assert_eq!(store.events(Some("a"), 0, 10).unwrap(), vec![events[0].clone(), events[2].clone()]);
    assert_eq!(store.events(None, 200, 10).unwrap(), events[1..].to_vec());
    assert_eq!(store.events(None, 0, 1).unwrap().len(), 1);
    assert_eq!(store.prune_events(250).unwrap(), 2);
    assert_eq!(store.events(None, 0, 10).unwrap(), vec![events[2].clone()]);
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        db.insert(SCHEMA_KEY, (SCHEMA_VERSION + 1).to_string().as_bytes()).unwrap();
        db.flush().unwrap();
    }
    let err = super::reopen_for_test(dir.path()).err().expect("refused");
    assert!(matches!(err, StoreError::Newer { found, .. } if found == SCHEMA_VERSION + 1), "{err}");
}

#[test]
fn data_without_a_schema_marker_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        db.insert(b"someone/else", b"data").unwrap();
        db.flush().unwrap();
    }
    assert!(matches!(super::reopen_for_test(dir.path()), Err(StoreError::Foreign { .. })));
    // The refused store's handle was just dropped; sled may still hold its lock for a moment.
    let db = (0..40)
        .find_map(|_| {
            let db = sled::open(dir.path()).ok();
            if db.is_none() {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            db
        })
        .expect("reopen the refused store");
    assert_eq!(db.get(b"someone/else").unwrap().as_deref(), Some(&b"data"[..]));
}

#[tokio::test]
async fn a_corrupt_record_is_reported_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.db().unwrap().insert(format!("{TRANSITION_PREFIX}svc/x").as_bytes(), &b"{not json"[..]).unwrap();
    let err = store.load().expect_err("corrupt");
    assert!(err.to_string().contains("v1/tr/svc/x"), "{err}");
}

#[tokio::test]
async fn a_delivery_in_the_journal_survives_a_crash_before_the_sled_flush() {
    use crate::notify::{Message, NoticeKind, OutboxItem, Receipt};
    let dir = tempfile::tempdir().unwrap();
    let message = Message {
        title: "t".into(),
        text: String::new(),
        html: String::new(),
        fields: Vec::new(),
        links: Vec::new(),
        alert: None,
    };
    let item = OutboxItem::new("k".into(), "svc".into(), crate::spec::Route::PagerDuty, NoticeKind::Page, message, 5);
    let record =
        SentRecord { at: 9, receipt: Receipt { slack_channel: Some("C".into()), slack_ts: Some("1.5".into()) } };
    {
        let store = Store::open(dir.path()).unwrap();
        store.commit(&[], &[], std::slice::from_ref(&item)).await.unwrap();
        // The transport said OK and the journal has it; the process dies before the sled batch.
        store.sent_journal.append("k", &record).unwrap();
    }
    // A crash mid-append leaves a torn line; it is skipped.
    std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("sent.journal"))
        .unwrap()
        .write_all(b"{\"key\":\"x")
        .unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.outbox_depth(), 0, "replayed: the item is no longer queued");
    assert_eq!(store.sent("k").unwrap(), Some(record));
    assert_eq!(store.commit(&[], &[], &[item]).await.unwrap(), 0, "and cannot be queued again");
    assert_eq!(std::fs::metadata(dir.path().join("sent.journal")).unwrap().len(), 0, "emptied once in sled");
}

#[tokio::test]
async fn a_corrupt_outbox_record_is_skipped_not_fatal() {
    use crate::notify::{Message, NoticeKind, OutboxItem};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let message = Message {
        title: "t".into(),
        text: String::new(),
        html: String::new(),
        fields: Vec::new(),
        links: Vec::new(),
        alert: None,
    };
    let item =
        OutboxItem::new("good".into(), "svc".into(), crate::spec::Route::PagerDuty, NoticeKind::Page, message, 5);
    store.commit(&[], &[], &[item]).await.unwrap();
    store.db().unwrap().insert(b"v1/outbox/bad", &b"{not json"[..]).unwrap();
    let scan = store.due_outbox(10, 10).unwrap();
    assert_eq!(scan.due.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(), ["good"]);
    assert_eq!((scan.corrupt, scan.depth), (vec!["v1/outbox/bad".to_string()], 2));
}

/// A parallel load cut at any SLO ids, present or not, reads exactly what one scan reads, in the
/// same order, including ids that extend one another (`a/b`, `a/b-c`, whose keys sort the
/// other way round).
#[tokio::test]
async fn a_split_load_reads_what_one_scan_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let ids = ["a/b", "a/b-c", "a/bc", "b/x", "c/y", "c/y2", "d/z"];
    let windows: Vec<WindowRecord> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let pages = (0..3)
                .map(|p| Page { level: p, index: i, slots: vec![[i as f64, p as f64]], detail: Vec::new() })
                .collect();
            window(id, pages)
        })
        .collect();
    store.save(&windows, &[]).await.unwrap();
    let whole = store.load().unwrap().windows;
    assert_eq!(whole.len(), ids.len());
    let known = ids.iter().map(|s| s.to_string());
    let unknown = ["0/0", "a/b-", "c/y1", "zz/top"].into_iter().map(String::from);
    for parts in 1..=8 {
        let splits = split_points(known.clone().chain(unknown.clone()), parts);
        assert_eq!(store.load_split(&splits).unwrap().windows, whole, "cut at {splits:?}");
    }
}

fn log_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join(windowlog::FILE_NAME)).unwrap().len()
}

/// A crash mid-append leaves part of a save at the end of the log: the saves before it read
/// back whole, the torn bytes are cut off, and saving carries on after them.
#[tokio::test]
async fn a_torn_last_save_is_cut_off_and_the_saves_before_it_read() {
    let dir = tempfile::tempdir().unwrap();
    let series = SeriesRecord { source: "t".into(), series: "req".into(), at: 9, value: 3.5 };
    let first = plain_page(0, 1, 1.0);
    {
        let store = Store::open(dir.path()).unwrap();
        store.save(&[window("s/x", vec![first.clone()])], std::slice::from_ref(&series)).await.unwrap();
    }
    let whole = log_len(dir.path());
    {
        let store = super::reopen_for_test(dir.path()).unwrap();
        store.save(&[window("s/x", vec![plain_page(0, 1, 2.0)])], &[]).await.unwrap();
    }
    let torn = whole + (log_len(dir.path()) - whole) / 2;
    std::fs::OpenOptions::new().write(true).open(dir.path().join(windowlog::FILE_NAME)).unwrap().set_len(torn).unwrap();

    let store = super::reopen_for_test(dir.path()).unwrap();
    let restored = store.load().unwrap();
    assert_eq!(restored.windows, vec![window("s/x", vec![first])]);
    assert_eq!(restored.series, vec![series]);
    assert_eq!(log_len(dir.path()), whole, "the torn save is cut off");
    let third = plain_page(0, 2, 3.0);
    store.save(&[window("s/x", vec![third.clone()])], &[]).await.unwrap();
    assert_eq!(store.load().unwrap().windows[0].pages, vec![plain_page(0, 1, 1.0), third]);
}

/// Rewriting the same pages grows the log until a full save is asked for; the full save
/// shrinks it to the live state and reads back the same.
#[tokio::test]
async fn a_full_save_compacts_the_log_to_its_live_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let page = |value: f64| Page { level: 0, index: 0, slots: vec![[value, value * 2.5]; 64], detail: Vec::new() };
    let windows = |value: f64| (0..50).map(|i| window(&format!("s/{i:02}"), vec![page(value)])).collect::<Vec<_>>();
    let mut value = 0.5;
    while !store.wants_full_save() {
        assert!(value < 1000.0, "the log never asked to be compacted");
        value += 1.0;
        store.save(&windows(value), &[]).await.unwrap();
    }
    let before = store.load().unwrap();
    let grown = log_len(dir.path());
    store.save_full(&before.windows, &before.series).await.unwrap();
    assert!(log_len(dir.path()) * 20 < grown, "{} bytes after compaction, {grown} before", log_len(dir.path()));
    assert!(!store.wants_full_save());
    assert_eq!(store.load().unwrap(), before);
    drop(store);
    assert_eq!(super::reopen_for_test(dir.path()).unwrap().load().unwrap(), before);
}

/// A schema-2 store keeps its windows in sled: they load from there, a delta save is refused
/// until a full save has moved everything into the log, and sled keeps none of it after.
#[tokio::test]
async fn a_schema_2_store_moves_its_windows_into_the_log_on_the_first_full_save() {
    let dir = tempfile::tempdir().unwrap();
    let series = SeriesRecord { source: "t".into(), series: "req".into(), at: 9, value: 3.5 };
    let saved = window("s/x", vec![plain_page(0, 1, 1.0)]);
    {
        let db = sled::open(dir.path()).unwrap();
        db.insert(SCHEMA_KEY, b"2").unwrap();
        let header = WindowHeaderRecord { fingerprint: saved.fingerprint, header: saved.header.clone() };
        db.insert("v2/slo/s/x/hdr", serde_json::to_vec(&header).unwrap()).unwrap();
        db.insert("v2/slo/s/x/page/00/01", page::encode(&saved.pages[0])).unwrap();
        db.insert("v1/series/t\u{0}req", serde_json::to_vec(&series).unwrap()).unwrap();
        db.flush().unwrap();
    }
    let store = super::reopen_for_test(dir.path()).unwrap();
    let restored = store.load().unwrap();
    assert_eq!((&restored.windows, &restored.series), (&vec![saved.clone()], &vec![series.clone()]));
    assert!(store.wants_full_save());
    assert!(matches!(store.save(&[], &[]).await, Err(StoreError::FullSaveRequired)));

    store.save_full(&restored.windows, &restored.series).await.unwrap();
    assert!(!store.wants_full_save());
    let db = store.db().unwrap();
    assert_eq!(db.scan_prefix(WINDOW_PREFIX).count() + db.scan_prefix(SERIES_PREFIX).count(), 0);
    drop(db);
    drop(store);
    let store = super::reopen_for_test(dir.path()).unwrap();
    assert_eq!(store.db().unwrap().get(SCHEMA_KEY).unwrap().as_deref(), Some(SCHEMA_VERSION.to_string().as_bytes()));
    assert_eq!(store.load().unwrap(), restored);
}

/// A damaged record with saves after it is corruption, not a torn append: the load fails
/// naming the log and the offset, and the log is left as it was.
#[tokio::test]
async fn a_damaged_record_before_the_last_fails_the_load_and_keeps_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.save(&[window("s/x", vec![plain_page(0, 1, 1.0)])], &[]).await.unwrap();
    store.save(&[window("s/x", vec![plain_page(0, 1, 2.0)])], &[]).await.unwrap();
    drop(store);
    let path = dir.path().join(windowlog::FILE_NAME);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[40] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();

    let err = super::reopen_for_test(dir.path()).unwrap().load().expect_err("damaged");
    assert!(err.to_string().contains("windows.log: at byte 24"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing cut off");
}

/// The remedy every refusal names, so an operator at 3 a.m. knows the next command.
fn assert_refused(err: &StoreError, file: &str, what: &str) {
    let text = err.to_string();
    assert!(matches!(err, StoreError::Damaged { .. }), "{err:?}");
    assert!(text.contains(file) && text.contains(what), "{text}");
    assert!(text.contains("sloguard store check") && text.contains("--reset-state"), "{text}");
}

/// A store with an alert transition, an event and saved windows: everything a start restores.
async fn store_with_state(dir: &Path) {
    let store = Store::open(dir).unwrap();
    store.save(&[window("s/x", vec![plain_page(0, 1, 1.0)])], &[]).await.unwrap();
    let transition = Transition::Service { name: "s".into(), frozen_since: Some(5) };
    store.commit(&[freeze_event("s", 5)], &[transition], &[]).await.unwrap();
}

#[tokio::test]
async fn a_new_store_writes_one_id_into_both_halves() {
    let dir = tempfile::tempdir().unwrap();
    let id = Store::open(dir.path()).unwrap().id();
    assert_eq!(id.len(), 32);
    let bytes = std::fs::read(dir.path().join(windowlog::FILE_NAME)).unwrap();
    assert_eq!(&bytes[..8], b"SLGWLOG2");
    assert_eq!(hex(&bytes[8..24]), id, "the log was created with the store");
    let other = tempfile::tempdir().unwrap();
    assert_ne!(Store::open(other.path()).unwrap().id(), id);
    assert_eq!(super::reopen_for_test(dir.path()).unwrap().id(), id);
}

#[tokio::test]
async fn a_deleted_window_log_refuses_the_start() {
    let dir = tempfile::tempdir().unwrap();
    store_with_state(dir.path()).await;
    std::fs::remove_file(dir.path().join(windowlog::FILE_NAME)).unwrap();
    let err = super::reopen_for_test(dir.path()).err().expect("refused");
    assert_refused(&err, "windows.log", "missing");
    assert!(!dir.path().join(windowlog::FILE_NAME).exists(), "no empty log was made in its place");
}

/// Even without alert state: the marker says the log existed.
#[tokio::test]
async fn a_deleted_window_log_of_a_quiet_store_refuses_the_start() {
    let dir = tempfile::tempdir().unwrap();
    Store::open(dir.path()).unwrap().save(&[window("s/x", vec![plain_page(0, 1, 1.0)])], &[]).await.unwrap();
    std::fs::remove_file(dir.path().join(windowlog::FILE_NAME)).unwrap();
    let err = super::reopen_for_test(dir.path()).err().expect("refused");
    assert_refused(&err, "windows.log", "missing");
}

#[tokio::test]
async fn deleted_sled_files_refuse_the_start() {
    let dir = tempfile::tempdir().unwrap();
    store_with_state(dir.path()).await;
    std::thread::sleep(std::time::Duration::from_millis(200));
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name == "db" || name == "conf" || name.starts_with("snap.") {
            std::fs::remove_file(&path).unwrap();
        } else if name == "blobs" {
            std::fs::remove_dir_all(&path).unwrap();
        }
    }
    let err = Store::open(dir.path()).err().expect("refused");
    assert_refused(&err, "/db", "sled database is missing");
    assert!(!dir.path().join("db").exists(), "no empty database was made in its place");
}

#[tokio::test]
async fn a_window_log_from_another_store_is_refused() {
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    store_with_state(one.path()).await;
    store_with_state(two.path()).await;
    let log = windowlog::FILE_NAME;
    std::fs::copy(two.path().join(log), one.path().join(log)).unwrap();
    let err = super::reopen_for_test(one.path()).err().expect("refused");
    assert_refused(&err, "windows.log", "belongs to another store");
}

/// The reproduced failure: a damaged length in a middle record pointed past the end and was
/// taken for a torn append, and the start cut every record after it.
#[tokio::test]
async fn a_damaged_length_in_a_middle_record_is_refused_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for value in [1.0, 2.0, 3.0] {
        store.save(&[window("s/x", vec![plain_page(0, 1, value)])], &[]).await.unwrap();
    }
    drop(store);
    let path = dir.path().join(windowlog::FILE_NAME);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[24 + 3] = 0x7f; // the first record's length, now ~2 GB
    std::fs::write(&path, &bytes).unwrap();
    let err = super::reopen_for_test(dir.path()).unwrap().load().expect_err("refused");
    assert_refused(&err, "windows.log", "at byte 24: record head checksum mismatch");
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing cut off");
}

/// A crash can leave a zero-filled tail; that and a half-written last record are the only
/// damage a start repairs.
#[tokio::test]
async fn a_zero_filled_tail_is_a_torn_save() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.save(&[window("s/x", vec![plain_page(0, 1, 1.0)])], &[]).await.unwrap();
    drop(store);
    let whole = log_len(dir.path());
    let mut file = std::fs::OpenOptions::new().append(true).open(dir.path().join(windowlog::FILE_NAME)).unwrap();
    file.write_all(&[0u8; 100]).unwrap();
    drop(file);
    let store = super::reopen_for_test(dir.path()).unwrap();
    assert_eq!(store.load().unwrap().windows[0].pages, vec![plain_page(0, 1, 1.0)]);
    assert_eq!(log_len(dir.path()), whole);
}

/// A version-1 log framed by hand: the magic, then length, checksum, payload per save.
fn v1_log(saves: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = b"SLGWLOG1".to_vec();
    for payload in saves {
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        bytes.extend_from_slice(payload);
    }
    bytes
}

/// A store from before identity: schema 3 in sled, no id, a version-1 log.
fn legacy_store(dir: &Path, log: &[u8]) {
    let db = sled::open(dir).unwrap();
    db.insert(SCHEMA_KEY, b"3").unwrap();
    db.flush().unwrap();
    drop(db);
    std::fs::write(dir.join(windowlog::FILE_NAME), log).unwrap();
}

#[tokio::test]
async fn a_store_from_before_identity_is_adopted_with_its_windows() {
    let dir = tempfile::tempdir().unwrap();
    let saves: Vec<Vec<u8>> =
        [1.0, 2.0].iter().map(|&v| windowlog::encode(&[window("s/x", vec![plain_page(0, 1, v)])], &[])).collect();
    legacy_store(dir.path(), &v1_log(&saves));
    std::thread::sleep(std::time::Duration::from_millis(200));
    let store = super::reopen_for_test(dir.path()).unwrap();
    assert_eq!(store.load().unwrap().windows, vec![window("s/x", vec![plain_page(0, 1, 2.0)])]);
    let bytes = std::fs::read(dir.path().join(windowlog::FILE_NAME)).unwrap();
    assert_eq!((&bytes[..8], hex(&bytes[8..24])), (b"SLGWLOG2".as_slice(), store.id()));
    store.save(&[window("s/x", vec![plain_page(0, 2, 3.0)])], &[]).await.unwrap();
    drop(store);
    let store = super::reopen_for_test(dir.path()).unwrap();
    assert_eq!(store.load().unwrap().windows[0].pages, vec![plain_page(0, 1, 2.0), plain_page(0, 2, 3.0)]);
}

/// Version 1 has no head checksum: a length running past the end is a torn append only if no
/// whole record follows it.
#[tokio::test]
async fn a_version_1_log_with_a_damaged_middle_length_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let saves: Vec<Vec<u8>> =
        [1.0, 2.0, 3.0].iter().map(|&v| windowlog::encode(&[window("s/x", vec![plain_page(0, 1, v)])], &[])).collect();
    let mut log = v1_log(&saves);
    log[8 + 2] = 0x40; // the first record's length
    legacy_store(dir.path(), &log);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let err = super::reopen_for_test(dir.path()).err().expect("refused");
    assert_refused(&err, "windows.log", "whole records follow");
    assert_eq!(std::fs::read(dir.path().join(windowlog::FILE_NAME)).unwrap(), log, "nothing cut off");

    // The same log with only its last save torn is adopted, minus that save.
    let dir = tempfile::tempdir().unwrap();
    let whole = v1_log(&saves);
    legacy_store(dir.path(), &whole[..whole.len() - 10]);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let store = super::reopen_for_test(dir.path()).unwrap();
    assert_eq!(store.load().unwrap().windows[0].pages, vec![plain_page(0, 1, 2.0)]);
}

#[tokio::test]
async fn discard_moves_the_store_aside_and_the_next_open_starts_afresh() {
    let dir = tempfile::tempdir().unwrap();
    store_with_state(dir.path()).await;
    std::thread::sleep(std::time::Duration::from_millis(200));
    std::fs::remove_file(dir.path().join(windowlog::FILE_NAME)).unwrap();
    assert!(super::reopen_for_test(dir.path()).is_err());
    std::thread::sleep(std::time::Duration::from_millis(200));
    let at = 1_796_524_500_123; // 2026-12-06T02:35:00.123Z
    let (moved_to, names) = discard(dir.path(), at).unwrap();
    assert_eq!(moved_to, dir.path().join("discarded-20261206T023500Z"));
    assert!(names.contains(&"db".to_string()) && names.contains(&"sent.journal".to_string()), "{names:?}");
    assert!(moved_to.join("db").exists());
    let store = super::reopen_for_test(dir.path()).unwrap();
    assert_eq!(store.events(None, 0, 10).unwrap(), Vec::<Event>::new());
    drop(store);
    std::thread::sleep(std::time::Duration::from_millis(200));
    // A second reset in the same second neither collides nor moves the first one's directory.
    let (again, names) = discard(dir.path(), at).unwrap();
    assert_eq!(again, dir.path().join("discarded-20261206T023500Z-2"));
    assert!(!names.iter().any(|n| n.starts_with("discarded-")), "{names:?}");
    assert!(Store::check(dir.path()).is_err(), "nothing left to check");
}

/// The reproduced failure: after a full disk, sled failed every later write with the same
/// error until a restart. Injected here (the seam fails writes and probes as ENOSPC and marks
/// sled failed); the integration test makes writes really fail with a file size limit.
#[tokio::test]
async fn a_store_recovers_by_itself_after_writes_fail_and_a_retried_commit_is_not_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert!(store.health().writable);
    store.inject_full_disk(true);
    let freeze = freeze_event("s", 5);
    store.commit(std::slice::from_ref(&freeze), &[], &[]).await.expect_err("the disk is full");
    let health = store.health();
    assert!(!health.writable && health.reason.as_deref().is_some_and(|r| r.contains("sled")), "{health:?}");
    assert_eq!(health.failures, vec![("sled", "no_space", 1)]);
    assert!(!store.heal().await, "the probe fails while the disk is full");
    assert!(!store.health().writable);

    store.inject_full_disk(false);
    let started = std::time::Instant::now();
    assert!(store.heal().await, "recovers once the probe succeeds");
    eprintln!("heal with a sled reopen took {:?}", started.elapsed());
    assert!(store.health().writable && store.health().reason.is_none());
    // Committed twice, as when a first attempt reached sled but not the disk: one event.
    let transition = Transition::Service { name: "s".into(), frozen_since: Some(5) };
    for _ in 0..2 {
        store.commit(std::slice::from_ref(&freeze), std::slice::from_ref(&transition), &[]).await.unwrap();
    }
    assert_eq!(store.events(None, 0, 10).unwrap(), vec![freeze.clone()]);
    drop(store);
    let store = super::reopen_for_test(dir.path()).unwrap();
    assert_eq!(store.events(None, 0, 10).unwrap(), vec![freeze]);
    assert_eq!(store.load().unwrap().transitions, vec![transition]);
}
