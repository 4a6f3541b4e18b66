//! The store suite: runs on a temporary SQLite file, or on PostgreSQL when
//! `KILN_TEST_DATABASE_URL` is set (`.ci/run` does both).

use kiln_core::{AccessLevel, BuildEvent, BuildStatus, PageRequest, Scope, Visibility};
use kiln_store::{Appended, Change, Finish, Holder};
use kiln_store::{NewBuild, NewPipeline, ProjectRef, Store, StoreError};
use kiln_test_support::{commit, TestDatabase};

async fn fresh() -> (TestDatabase, Store) {
    let db = TestDatabase::new().await;
    let store = db.open().await.expect("open store");
    (db, store)
}

async fn pipeline(store: &Store, project_id: i64, sha: &str, statuses: &[BuildStatus]) -> Vec<i64> {
    let builds = statuses
        .iter()
        .enumerate()
        .map(|(i, s)| NewBuild::new(&format!("job{i}"), "test", 1, *s))
        .collect();
    let new = kiln_test_support::pipeline(project_id, sha, builds);
    store
        .pipelines()
        .create(&new)
        .await
        .expect("create pipeline")
        .1
}

async fn project(store: &Store) -> i64 {
    store
        .projects()
        .create("group", "app", Visibility::Private, None)
        .await
        .expect("project")
}

/// A project whose one build runner `r1` has claimed: the runner, and the claim.
async fn one_claimed_build(store: &Store) -> (i64, kiln_store::Claimed) {
    let pid = project(store).await;
    let ids = pipeline(store, pid, "aaa", &[BuildStatus::Pending]).await;
    let runner = store.runners().find_or_create("r1").await.unwrap();
    let claimed = store
        .builds()
        .claim(runner, i64::MAX, &kiln_store::new_secret())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.build_id, ids[0]);
    (runner, claimed)
}

#[tokio::test]
async fn tokens_authenticate_their_user_and_are_stored_hashed() {
    let (_db, store) = fresh().await;
    let id = store
        .users()
        .create("root", "Administrator", "admin@example.com", true)
        .await
        .unwrap();
    let token = store.users().create_token(id, "cli").await.unwrap();
    assert_eq!(token.len(), 20);
    let user = store.users().by_token(&token).await.unwrap().expect("user");
    assert_eq!(
        (user.id, user.is_admin, user.username.as_str()),
        (id, true, "root")
    );
    assert!(store.users().by_token("wrong").await.unwrap().is_none());
    assert!(store
        .users()
        .by_token(&kiln_store::hash_secret(&token))
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn duplicate_usernames_and_project_paths_are_conflicts() {
    let (_db, store) = fresh().await;
    store.users().create("a", "A", "a@x", false).await.unwrap();
    assert!(matches!(
        store.users().create("a", "A", "b@x", false).await,
        Err(StoreError::Conflict(_))
    ));
    project(&store).await;
    let again = store
        .projects()
        .create("group", "app", Visibility::Public, None)
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))));
}

#[tokio::test]
async fn project_access_by_id_and_path() {
    let (_db, store) = fresh().await;
    let pid = project(&store).await;
    let uid = store
        .users()
        .create("dev", "Dev", "dev@x", false)
        .await
        .unwrap();
    let by_path = ProjectRef::parse("group/app").unwrap();
    assert_eq!(
        store
            .projects()
            .with_access(&by_path, Some(uid))
            .await
            .unwrap()
            .access,
        None
    );
    store
        .projects()
        .add_member(pid, uid, AccessLevel::Reporter)
        .await
        .unwrap();
    store
        .projects()
        .add_member(pid, uid, AccessLevel::Developer)
        .await
        .unwrap();
    let access = store
        .projects()
        .with_access(&ProjectRef::Id(pid), Some(uid))
        .await
        .unwrap();
    assert_eq!(access.access, Some(AccessLevel::Developer));
    assert_eq!(access.project.full_path(), "group/app");
    assert!(matches!(
        store.projects().get(&ProjectRef::Id(pid + 99)).await,
        Err(StoreError::NotFound)
    ));
}

#[tokio::test]
async fn lists_are_newest_first_with_exact_totals() {
    let (_db, store) = fresh().await;
    let pid = project(&store).await;
    let other = store
        .projects()
        .create("group", "other", Visibility::Public, None)
        .await
        .unwrap();
    use BuildStatus as S;
    let first = pipeline(&store, pid, "aaa", &[S::Success, S::Failed, S::Pending]).await;
    pipeline(&store, other, "bbb", &[S::Failed]).await;
    let second = pipeline(&store, pid, "ccc", &[S::Failed, S::Manual]).await;

    let page = PageRequest {
        page: 1,
        per_page: 2,
    };
    let all = store.builds().list(pid, &Scope::all(), page).await.unwrap();
    assert_eq!(all.total, 5);
    assert_eq!(
        all.builds.iter().map(|b| b.id).collect::<Vec<_>>(),
        vec![second[1], second[0]]
    );
    let third = store
        .builds()
        .list(
            pid,
            &Scope::all(),
            PageRequest {
                page: 3,
                per_page: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        third.builds.iter().map(|b| b.id).collect::<Vec<_>>(),
        vec![first[0]]
    );
    let beyond = store
        .builds()
        .list(
            pid,
            &Scope::all(),
            PageRequest {
                page: 4,
                per_page: 2,
            },
        )
        .await
        .unwrap();
    assert!(beyond.builds.is_empty());

    let failed = store
        .builds()
        .list(pid, &Scope::of(&[S::Failed]), PageRequest::default())
        .await
        .unwrap();
    assert_eq!(failed.total, 2);
    assert_eq!(
        failed.builds.iter().map(|b| b.id).collect::<Vec<_>>(),
        vec![second[0], first[1]]
    );
    let two = Scope::of(&[S::Failed, S::Success]);
    assert_eq!(
        store
            .builds()
            .list(pid, &two, PageRequest::default())
            .await
            .unwrap()
            .total,
        3
    );

    let commit_builds = store
        .builds()
        .list_for_commit(pid, "aaa", &Scope::all(), PageRequest::default())
        .await
        .unwrap();
    assert_eq!(commit_builds.total, 3);
    assert_eq!(commit_builds.builds[0].commit.author_tz_offset_minutes, 60);
    assert!(matches!(
        store
            .builds()
            .list_for_commit(pid, "bbb", &Scope::all(), PageRequest::default())
            .await,
        Err(StoreError::NotFound)
    ));
}

#[tokio::test]
async fn transitions_follow_the_core_and_keep_counts() {
    let (_db, store) = fresh().await;
    let pid = project(&store).await;
    let ids = pipeline(
        &store,
        pid,
        "aaa",
        &[BuildStatus::Pending, BuildStatus::Success],
    )
    .await;
    let builds = store.builds();
    assert_eq!(
        builds
            .apply_user_event(pid, ids[0], BuildEvent::Start, None)
            .await
            .unwrap()
            .0,
        BuildStatus::Running
    );
    assert_eq!(
        builds
            .apply_user_event(pid, ids[0], BuildEvent::Cancel, None)
            .await
            .unwrap()
            .0,
        BuildStatus::Canceled
    );
    let canceled = builds.get(pid, ids[0]).await.unwrap();
    assert!(canceled.started_at.is_some() && canceled.finished_at.is_some());
    assert!(builds
        .apply_user_event(pid, ids[1], BuildEvent::Cancel, None)
        .await
        .is_err());
    assert_eq!(
        builds
            .count(pid, &Scope::of(&[BuildStatus::Canceled]))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        builds
            .count(pid, &Scope::of(&[BuildStatus::Pending]))
            .await
            .unwrap(),
        0
    );
    assert_eq!(builds.count(pid, &Scope::all()).await.unwrap(), 2);
    assert!(builds
        .apply_user_event(pid + 1, ids[0], BuildEvent::Cancel, None)
        .await
        .is_err());
}

#[tokio::test]
async fn retry_makes_a_new_pending_build_and_leaves_the_old_one() {
    let (_db, store) = fresh().await;
    let pid = project(&store).await;
    let uid = store
        .users()
        .create("dev", "Dev", "dev@x", false)
        .await
        .unwrap();
    let ids = pipeline(&store, pid, "aaa", &[BuildStatus::Failed]).await;
    let (new_id, _) = store.builds().retry(pid, ids[0], Some(uid)).await.unwrap();
    assert!(new_id > ids[0]);
    let (old, new) = (
        store.builds().get(pid, ids[0]).await.unwrap(),
        store.builds().get(pid, new_id).await.unwrap(),
    );
    assert_eq!(old.status, BuildStatus::Failed);
    assert_eq!(new.status, BuildStatus::Pending);
    assert_eq!(
        (new.name, new.stage, new.commit.sha, new.pipeline_id),
        (old.name, old.stage, old.commit.sha, old.pipeline_id)
    );
    assert_eq!(new.user.map(|u| u.id), Some(uid));
    let page = store
        .builds()
        .list(pid, &Scope::all(), PageRequest::default())
        .await
        .unwrap();
    assert_eq!(
        page.builds.iter().map(|b| b.id).collect::<Vec<_>>(),
        vec![new_id, ids[0]]
    );
    // A build is retried once: again (or a concurrent second request) makes nothing.
    assert!(matches!(
        store.builds().retry(pid, ids[0], Some(uid)).await,
        Err(kiln_store::StoreError::Conflict(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_retries_and_cancels_leave_one_consistent_outcome() {
    let (_db, store) = fresh().await;
    let pid = project(&store).await;
    let ids = pipeline(
        &store,
        pid,
        "aaa",
        &[
            BuildStatus::Failed,
            BuildStatus::Pending,
            BuildStatus::Pending,
        ],
    )
    .await;
    let retries = (0..8).map(|_| {
        let store = store.clone();
        let id = ids[0];
        tokio::spawn(async move { store.builds().retry(pid, id, None).await.is_ok() })
    });
    // A claim and a cancel race on the same pending builds.
    let runner = store.runners().find_or_create("racer").await.unwrap();
    let claims = (0..4).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .builds()
                .claim(runner, i64::MAX, &kiln_store::new_secret())
                .await
                .unwrap()
        })
    });
    let cancels = ids[1..].iter().map(|&id| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .builds()
                .apply_user_event(pid, id, BuildEvent::Cancel, None)
                .await
                .is_ok()
        })
    });
    let retried: Vec<bool> = futures_join(retries).await;
    let claimed: Vec<i64> = futures_join(claims)
        .await
        .into_iter()
        .flatten()
        .map(|c| c.build_id)
        .collect();
    // Each build is claimed at most once, and only a pending one (the retry's new build is).
    let mut unique = claimed.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), claimed.len(), "{claimed:?}");
    assert!(!claimed.contains(&ids[0]), "{claimed:?}");
    let canceled: Vec<bool> = futures_join(cancels).await;
    assert_eq!(retried.iter().filter(|ok| **ok).count(), 1, "{retried:?}");
    // Every cancel took, whether its build was pending or claimed meanwhile.
    assert!(canceled.iter().all(|ok| *ok), "{canceled:?}");
    for id in &ids[1..] {
        assert_eq!(
            store.builds().get(pid, *id).await.unwrap().status,
            BuildStatus::Canceled
        );
    }
    // The counters agree with the rows.
    let page = store
        .builds()
        .list(
            pid,
            &Scope::all(),
            PageRequest {
                page: 1,
                per_page: 100,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.builds.len(), 4);
    for status in BuildStatus::ALL {
        let rows = page.builds.iter().filter(|b| b.status == status).count() as u64;
        assert_eq!(
            store
                .builds()
                .count(pid, &Scope::of(&[status]))
                .await
                .unwrap(),
            rows,
            "{status}"
        );
    }
}

async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        out.push(handle.await.unwrap());
    }
    out
}

#[tokio::test]
async fn the_generator_writes_consistent_history() {
    let (_db, store) = fresh().await;
    let pid = project(&store).await;
    pipeline(&store, pid, "before", &[BuildStatus::Success]).await;
    let written = kiln_store::generate::generate(&store, pid, 1_203, 7)
        .await
        .unwrap();
    assert_eq!(written, 12_030);
    pipeline(&store, pid, "after", &[BuildStatus::Pending]).await;
    let builds = store.builds();
    let total = builds.count(pid, &Scope::all()).await.unwrap();
    assert_eq!(total, 12_032);
    // Walk pages across the generated range: ids strictly decrease and totals match per scope.
    let mut last = i64::MAX;
    for page in [1, 2, 300, 601, 602] {
        let got = builds
            .list(pid, &Scope::all(), PageRequest { page, per_page: 20 })
            .await
            .unwrap();
        for b in &got.builds {
            assert!(b.id < last);
            last = b.id;
        }
        if page == 602 {
            assert_eq!(got.builds.len(), 12);
        }
    }
    let mut sum = 0;
    for status in BuildStatus::ALL {
        let scope = Scope::of(&[status]);
        let n = builds.count(pid, &scope).await.unwrap();
        let pages = builds
            .list(
                pid,
                &scope,
                PageRequest {
                    page: 1,
                    per_page: 100,
                },
            )
            .await
            .unwrap();
        assert!(pages.builds.iter().all(|b| b.status == status));
        assert_eq!(pages.builds.len() as u64, n.min(100));
        sum += n;
    }
    assert_eq!(sum, total);
    let newest = builds
        .list(
            pid,
            &Scope::all(),
            PageRequest {
                page: 1,
                per_page: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(newest.builds[0].commit.sha, "after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_claimers_take_each_pending_build_exactly_once() {
    let (_db, store) = fresh().await;
    let pid = project(&store).await;
    let ids = pipeline(&store, pid, "aaa", &[BuildStatus::Pending; 12]).await;
    let runner = store.runners().find_or_create("racer").await.unwrap();
    let claimers = (0..6).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(c) = store
                .builds()
                .claim(runner, i64::MAX, &kiln_store::new_secret())
                .await
                .unwrap()
            {
                mine.push(c.build_id);
            }
            mine
        })
    });
    let mut claimed: Vec<i64> = futures_join(claimers).await.concat();
    claimed.sort_unstable();
    assert_eq!(claimed, ids);
}

#[tokio::test]
async fn trace_appends_are_idempotent_by_offset_and_refuse_gaps() {
    let (_db, store) = fresh().await;
    let pid = project(&store).await;
    pipeline(&store, pid, "aaa", &[BuildStatus::Pending]).await;
    let runner = store.runners().find_or_create("r1").await.unwrap();
    let other = store.runners().find_or_create("r2").await.unwrap();
    let build = store
        .builds()
        .claim(runner, i64::MAX, &kiln_store::new_secret())
        .await
        .unwrap()
        .unwrap()
        .build_id;
    let builds = store.builds();
    assert_eq!(
        builds
            .append_trace_at(build, runner, 0, b"hello ", i64::MAX)
            .await
            .unwrap(),
        Appended::Stored { size: 6 }
    );
    // The same range again (its answer was lost): stored once.
    assert_eq!(
        builds
            .append_trace_at(build, runner, 0, b"hello ", i64::MAX)
            .await
            .unwrap(),
        Appended::Stored { size: 6 }
    );
    assert_eq!(
        builds
            .append_trace_at(build, runner, 9, b"gap", i64::MAX)
            .await
            .unwrap(),
        Appended::Mismatch { size: 6 }
    );
    assert_eq!(
        builds
            .append_trace_at(build, runner, 6, b"world", i64::MAX)
            .await
            .unwrap(),
        Appended::Stored { size: 11 }
    );
    assert_eq!(builds.trace(build).await.unwrap(), b"hello world");
    // Only the runner holding the build writes to it or finishes it.
    assert!(matches!(
        builds
            .append_trace_at(build, other, 11, b"!", i64::MAX)
            .await,
        Err(StoreError::NotHeld(BuildStatus::Running))
    ));
    let success = Finish {
        success: true,
        ..Finish::system_failure()
    };
    assert!(matches!(
        builds
            .finish(build, Holder::Runner(other), &success, b"")
            .await,
        Err(StoreError::NotHeld(BuildStatus::Running))
    ));
    let done = builds
        .finish(build, Holder::Runner(runner), &success, b"")
        .await
        .unwrap();
    assert_eq!(done.status, BuildStatus::Success);
    assert!(matches!(
        builds
            .append_trace_at(build, runner, 11, b"!", i64::MAX)
            .await,
        Err(StoreError::NotHeld(BuildStatus::Success))
    ));
}

#[tokio::test]
async fn an_expired_lease_lets_anyone_fail_the_build_and_the_pipeline_moves_on() {
    let (_db, store) = fresh().await;
    let pid = project(&store).await;
    let ids = pipeline(&store, pid, "aaa", &[BuildStatus::Pending]).await;
    let runner = store.runners().find_or_create("r1").await.unwrap();
    let now = kiln_store::now_ms();
    let build = store
        .builds()
        .claim(runner, now + 60_000, &kiln_store::new_secret())
        .await
        .unwrap()
        .unwrap()
        .build_id;
    assert_eq!(build, ids[0]);
    let builds = store.builds();
    assert!(builds.expired_leases(now).await.unwrap().is_empty());
    // Not expired yet: the reaper leaves it.
    let left = builds
        .finish(
            build,
            Holder::ExpiredLease,
            &Finish::system_failure(),
            b"reaped\n",
        )
        .await
        .unwrap();
    assert_eq!(left.status, BuildStatus::Running);
    builds.renew_leases(runner, now - 1).await.unwrap();
    assert_eq!(builds.expired_leases(now).await.unwrap(), vec![build]);
    let reaped = builds
        .finish(
            build,
            Holder::ExpiredLease,
            &Finish::system_failure(),
            b"reaped\n",
        )
        .await
        .unwrap();
    assert_eq!(reaped.status, BuildStatus::Failed);
    assert_eq!(builds.trace(build).await.unwrap(), b"reaped\n");
    let record = builds.get(pid, build).await.unwrap();
    assert!(record.finished_at.is_some());
    let pipeline = store.pipelines().of_build(build).await.unwrap();
    assert_eq!(pipeline.status, "failed");
    // Its runner, back from the dead, is told the build is gone.
    assert!(matches!(
        builds.renew_lease(build, runner, now + 60_000).await,
        Err(StoreError::NotHeld(BuildStatus::Failed))
    ));
}

#[tokio::test]
async fn a_requeued_build_is_pending_again_without_a_runner() {
    let (_db, store) = fresh().await;
    let pid = project(&store).await;
    pipeline(&store, pid, "aaa", &[BuildStatus::Pending]).await;
    let runner = store.runners().find_or_create("r1").await.unwrap();
    let build = store
        .builds()
        .claim(runner, i64::MAX, &kiln_store::new_secret())
        .await
        .unwrap()
        .unwrap()
        .build_id;
    assert!(store.builds().requeue(build, runner).await.unwrap());
    let record = store.builds().get(pid, build).await.unwrap();
    assert_eq!(record.status, BuildStatus::Pending);
    assert_eq!((record.runner, record.started_at), (None, None));
    let again = store
        .builds()
        .claim(runner, i64::MAX, &kiln_store::new_secret())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.build_id, build);
}

/// A window of a log is read from the parts that hold it, numbered by the line counts of
/// the parts before it; every append is announced on the change feed.
#[tokio::test]
async fn a_window_of_a_log_knows_its_first_line() {
    let (_db, store) = fresh().await;
    let (runner, claimed) = one_claimed_build(&store).await;
    let build = claimed.build_id;
    let mut changes = store.feed().subscribe();
    let builds = store.builds();
    for (at, part) in [(0, &b"a\nb\n"[..]), (4, b"c\nd\ne\n"), (10, b"f")] {
        builds
            .append_trace_at(build, runner, at, part, i64::MAX)
            .await
            .unwrap();
    }
    let mut announced = 0;
    while let Ok(change) = changes.try_recv() {
        announced += usize::from(change == Change::Trace(build));
    }
    // On PostgreSQL a server also hears its own changes back through LISTEN, so some may
    // come twice; the three published at commit are there at once.
    assert!(announced >= 3, "{announced} announcements of 3 appends");
    let window = |from, to| builds.trace_window(build, from, to);
    let middle = window(5, 9).await.unwrap();
    assert_eq!((middle.start, middle.lines_before), (5, 2));
    assert_eq!(middle.data, b"\nd\ne");
    let rest = window(6, 100).await.unwrap();
    assert_eq!((rest.start, rest.lines_before), (6, 3));
    assert_eq!(rest.data, b"d\ne\nf");
    let whole = window(0, 11).await.unwrap();
    assert_eq!((whole.start, whole.lines_before), (0, 0));
    assert_eq!(whole.data, b"a\nb\nc\nd\ne\nf");
    let past = window(50, 60).await.unwrap();
    assert_eq!((past.start, past.lines_before, past.data.len()), (11, 5, 0));
}

/// A claim commits before its pipeline is marked running; a cancel that lands in between
/// must not be undone by the late mark (the pipeline stayed "running" with nothing running).
#[tokio::test]
async fn a_late_running_mark_does_not_undo_a_cancel() {
    let (_db, store) = fresh().await;
    let (_, claimed) = one_claimed_build(&store).await;
    let pid = claimed.project_id;
    let pipelines = store.pipelines();
    assert_eq!(pipelines.cancel(pid, claimed.pipeline_id).await.unwrap(), 1);
    pipelines
        .mark_running(pid, claimed.pipeline_id)
        .await
        .unwrap();
    let pipeline = pipelines.get(claimed.pipeline_id).await.unwrap();
    assert_eq!(pipeline.status, "canceled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_holder_at_a_time_holds_a_cluster_lease() {
    let (_db, store) = fresh().await;
    let takes = (0..8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .leases()
                .acquire("poller", &format!("server-{i}"), 60_000)
                .await
                .unwrap()
        })
    });
    let won: Vec<bool> = futures_join(takes).await;
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    let holder = format!("server-{}", won.iter().position(|w| *w).unwrap());
    assert!(store
        .leases()
        .acquire("poller", &holder, 60_000)
        .await
        .unwrap());
    assert!(!store
        .leases()
        .acquire("poller", "late", 60_000)
        .await
        .unwrap());
    store.leases().release("poller", &holder).await.unwrap();
    assert!(store
        .leases()
        .acquire("poller", "late", 60_000)
        .await
        .unwrap());
}

#[tokio::test]
async fn a_push_key_makes_one_pipeline() {
    let (_db, store) = fresh().await;
    let pid = project(&store).await;
    let new = NewPipeline {
        push_key: Some(format!("{pid}:master:abc")),
        ..NewPipeline::new(pid, commit("abc"), "master", vec![])
    };
    store.pipelines().create(&new).await.unwrap();
    assert!(matches!(
        store.pipelines().create(&new).await,
        Err(StoreError::Conflict(_))
    ));
}

/// A second store on the same database stands for another server: it hears of a cancel
/// made through the first, over PostgreSQL's LISTEN/NOTIFY (in-process on SQLite).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_feed_reaches_other_servers() {
    let (db, store) = fresh().await;
    let other = if store.backend_name() == "postgres" {
        db.open().await.unwrap()
    } else {
        store.clone()
    };
    let mut changes = other.feed().subscribe();
    // Let the listener connect before the change is made.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let pid = project(&store).await;
    let ids = pipeline(&store, pid, "aaa", &[BuildStatus::Pending]).await;
    let before = other.versions().builds(pid);
    store
        .builds()
        .apply_user_event(pid, ids[0], BuildEvent::Cancel, None)
        .await
        .unwrap();
    let heard = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            match changes.recv().await {
                Ok(Change::Canceled(id)) => return id,
                Ok(_) => continue,
                Err(err) => panic!("feed: {err}"),
            }
        }
    })
    .await
    .expect("the cancel reached the other store");
    assert_eq!(heard, ids[0]);
    assert_ne!(other.versions().builds(pid), before);
}

/// The processing done after each finished build (which skips reading the pipeline when
/// nothing but its status can change) leaves nothing for a full pass to do: on pseudo-random
/// pipelines of stages, whens, allowed failures and needs, run to the end with up to two builds
/// running at once, a full pass after every finish enqueues nothing and changes no status.
#[tokio::test]
async fn processing_after_a_finish_leaves_nothing_for_a_full_pass() {
    let (_db, store) = fresh().await;
    let pid = project(&store).await;
    let runner = store.runners().find_or_create("r1").await.unwrap();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for round in 0..25 {
        let mut builds = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for stage in 0..1 + next(3) as i64 {
            for j in 0..1 + next(4) {
                let name = format!("s{stage}j{j}");
                let mut build =
                    NewBuild::new(&name, &format!("stage{stage}"), stage, BuildStatus::Created);
                build.when =
                    ["on_success", "on_success", "on_failure", "always"][next(4) as usize].into();
                build.allow_failure = next(3) == 0;
                if stage > 0 && next(3) == 0 && !names.is_empty() {
                    let need = names[next(names.len() as u64) as usize].clone();
                    build.needs = Some(serde_json::to_string(&[need]).unwrap());
                }
                names.push(name);
                builds.push(build);
            }
        }
        let new = NewPipeline {
            status: "created".into(),
            ..NewPipeline::new(
                pid,
                kiln_test_support::commit(&format!("{round:040}")),
                "master",
                builds,
            )
        };
        let (pipeline_id, _) = store.pipelines().create(&new).await.unwrap();
        store.pipelines().process(pipeline_id).await.unwrap();
        // Up to two builds run at once, so that some finish beside a running one.
        let mut held: Vec<i64> = Vec::new();
        loop {
            let claimed = store
                .builds()
                .claim(
                    runner,
                    kiln_store::now_ms() + 60_000,
                    &kiln_store::new_secret(),
                )
                .await
                .unwrap();
            if let Some(claimed) = claimed {
                held.push(claimed.build_id);
                if held.len() < 2 {
                    continue;
                }
            }
            if held.is_empty() {
                break;
            }
            let build_id = held.remove(next(held.len() as u64) as usize);
            let finish = Finish {
                success: next(3) != 0,
                ..Finish::system_failure()
            };
            store
                .builds()
                .finish(build_id, Holder::Runner(runner), &finish, b"")
                .await
                .unwrap();
            let before = store.pipelines().get(pipeline_id).await.unwrap().status;
            let statuses = |store: Store| async move {
                let list = store
                    .builds()
                    .list(
                        pid,
                        &Scope::default(),
                        PageRequest {
                            page: 1,
                            per_page: 100,
                        },
                    )
                    .await
                    .unwrap();
                list.builds
                    .into_iter()
                    .map(|b| (b.id, b.status))
                    .collect::<Vec<_>>()
            };
            let builds_before = statuses(store.clone()).await;
            let enqueued = store.pipelines().process(pipeline_id).await.unwrap();
            assert!(
                enqueued.is_empty(),
                "round {round}: a full pass enqueued {enqueued:?}"
            );
            assert_eq!(
                store.pipelines().get(pipeline_id).await.unwrap().status,
                before,
                "round {round}"
            );
            assert_eq!(
                statuses(store.clone()).await,
                builds_before,
                "round {round}"
            );
        }
    }
}

#[tokio::test]
async fn status_changes_queue_deliveries_that_one_server_at_a_time_sends() {
    use kiln_store::{Attempt, HookEvent, HookSettings};
    let (_db, store) = fresh().await;
    let pid = project(&store).await;
    let hooks = store.hooks();
    let jobs_and_pipelines = hooks
        .create(
            pid,
            &HookSettings {
                url: Some("http://receiver.example/jobs".into()),
                job_events: Some(true),
                pipeline_events: Some(true),
                ..HookSettings::default()
            },
        )
        .await
        .unwrap();
    let pipelines_only = hooks
        .create(
            pid,
            &HookSettings {
                url: Some("http://receiver.example/pipelines".into()),
                pipeline_events: Some(true),
                push_events: Some(false),
                ..HookSettings::default()
            },
        )
        .await
        .unwrap();
    assert!(jobs_and_pipelines.push_events && !pipelines_only.push_events);
    assert_eq!(
        jobs_and_pipelines.alert_status(kiln_store::now_ms()),
        "executable"
    );

    let ids = pipeline(&store, pid, "aaa", &[BuildStatus::Pending]).await;
    let runner = store.runners().find_or_create("r1").await.unwrap();
    let claimed = store
        .builds()
        .claim(runner, i64::MAX, &kiln_store::new_secret())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.build_id, ids[0]);
    let success = Finish {
        success: true,
        failure_reason: None,
        exit_code: Some(0),
        coverage: None,
        retry: false,
    };
    store
        .builds()
        .finish(ids[0], Holder::Runner(runner), &success, b"")
        .await
        .unwrap();

    let told = |list: &[kiln_store::DeliveryRecord], event: HookEvent| {
        let mut statuses: Vec<String> = list
            .iter()
            .filter(|d| d.event == event)
            .map(|d| d.subject_status.clone())
            .collect();
        statuses.reverse();
        statuses
    };
    let first = hooks
        .deliveries(jobs_and_pipelines.id, 0, 50)
        .await
        .unwrap();
    let second = hooks.deliveries(pipelines_only.id, 0, 50).await.unwrap();
    let job_statuses = told(&first, HookEvent::Job);
    assert_eq!(job_statuses.last().map(String::as_str), Some("success"));
    assert!(
        job_statuses.contains(&"running".to_owned()),
        "{job_statuses:?}"
    );
    assert!(told(&second, HookEvent::Job).is_empty());
    let pipeline_statuses = told(&second, HookEvent::Pipeline);
    assert_eq!(
        pipeline_statuses.last().map(String::as_str),
        Some("success")
    );
    assert_eq!(pipeline_statuses, told(&first, HookEvent::Pipeline));
    // One change, one event uuid, whichever hook hears of it.
    let uuid_of = |list: &[kiln_store::DeliveryRecord]| {
        list.iter()
            .find(|d| d.event == HookEvent::Pipeline && d.subject_status == "success")
            .map(|d| d.event_uuid.clone())
            .unwrap()
    };
    assert_eq!(uuid_of(&first), uuid_of(&second));
    assert_eq!(uuid_of(&first).len(), 36);

    // Server A takes everything due; server B, meanwhile, nothing.
    let queued = first.len() + second.len();
    let taken = hooks.claim_due("a", 60_000, 100).await.unwrap();
    assert_eq!(taken.len(), queued);
    assert!(hooks.claim_due("b", 60_000, 100).await.unwrap().is_empty());
    assert_eq!(hooks.pending_count().await.unwrap(), queued as i64);

    let answered = |status: i64| Attempt {
        response_status: Some(status),
        duration_ms: 3,
        error: None,
        request_body: "{}".into(),
        response_body: Some("ok".into()),
    };
    // Every delivery but one is answered 200 (only its holder may say so); that one, last,
    // 503.
    let failed_one = taken
        .iter()
        .find(|due| due.hook.id == pipelines_only.id)
        .map(|due| due.delivery.id);
    for due in taken
        .iter()
        .filter(|due| Some(due.delivery.id) != failed_one)
    {
        for holder in ["b", "a"] {
            hooks
                .record_attempt(due.delivery.id, holder, &answered(200))
                .await
                .unwrap();
        }
    }
    hooks
        .record_attempt(failed_one.unwrap(), "a", &answered(503))
        .await
        .unwrap();
    assert_eq!(hooks.pending_count().await.unwrap(), 1);
    let failing = hooks.find(pid, pipelines_only.id).await.unwrap();
    assert_eq!(failing.recent_failures, 1);
    let retry = hooks
        .deliveries(pipelines_only.id, 0, 50)
        .await
        .unwrap()
        .into_iter()
        .find(|d| Some(d.id) == failed_one)
        .unwrap();
    assert_eq!((retry.state.as_str(), retry.attempts), ("pending", 1));
    assert_eq!(retry.response_status, Some(503));
    assert!(retry.next_attempt_at >= retry.created_at + 1_000);
    // The failing hook waits out its back-off: nothing is due yet.
    assert!(hooks.claim_due("a", 60_000, 100).await.unwrap().is_empty());
    let delivered = hooks
        .deliveries(jobs_and_pipelines.id, 0, 50)
        .await
        .unwrap();
    assert!(delivered
        .iter()
        .all(|d| d.state == "delivered" && d.attempts == 1));

    assert_eq!(kiln_store::hooks::backoff_ms(1), 1_000);
    assert_eq!(kiln_store::hooks::backoff_ms(3), 4_000);
    assert_eq!(kiln_store::hooks::backoff_ms(40), 30_000);

    hooks.delete(pid, pipelines_only.id).await.unwrap();
    assert_eq!(hooks.pending_count().await.unwrap(), 0);
    assert!(matches!(
        hooks.find(pid, pipelines_only.id).await,
        Err(StoreError::NotFound)
    ));
}
