//! `increment` and `update` under concurrent requests, over real HTTP on the memory store.

use sessionware_memory::MemoryStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atomic_updates_on_the_memory_store() {
    let report = sessionware::testing::atomic_over_http(MemoryStore::new()).await;
    eprintln!("memory: 50 concurrent updates: {report:?}");
}

mod semantics {
    use axum::Router;
    use axum::routing::get;
    use sessionware::{Error, Session, SessionLayer};
    use sessionware_memory::MemoryStore;
    use sessionware_test_support::client::{Client, serve};

    async fn app() -> Client {
        let app = Router::new()
            .route(
                "/increment",
                get(|s: Session| async move { Ok::<_, Error>(s.increment("n", 2)?.to_string()) }),
            )
            .route(
                "/clear-then-increment",
                get(|s: Session| async move {
                    s.clear();
                    Ok::<_, Error>(s.increment("n", 1)?.to_string())
                }),
            )
            .route(
                "/increment-then-insert",
                get(|s: Session| async move {
                    s.increment("n", 5)?;
                    s.insert("n", 100)?;
                    Ok::<_, Error>(s.increment("n", 1)?.to_string())
                }),
            )
            .route(
                "/text",
                get(|s: Session| async move { s.insert("n", "ten") }),
            )
            .route(
                "/max",
                get(|s: Session| async move { s.insert("n", i64::MAX) }),
            )
            .route(
                "/update",
                get(|s: Session| async move {
                    Ok::<_, Error>(s.update("n", |n: &mut i64| *n *= 3)?.to_string())
                }),
            )
            .route(
                "/get",
                get(|s: Session| async move {
                    s.get_value("n").map(|v| v.to_string()).unwrap_or_default()
                }),
            )
            .layer(SessionLayer::new(MemoryStore::new()));
        Client::new(serve(app).await)
    }

    #[tokio::test]
    async fn increments_count_from_zero_in_new_and_stored_sessions() {
        let mut client = app().await;
        assert_eq!(client.get("/increment").await.body, "2", "a new session");
        assert_eq!(client.get("/increment").await.body, "4", "a stored one");
        assert_eq!(client.get("/update").await.body, "12");
        assert_eq!(client.get("/get").await.body, "12");
    }

    #[tokio::test]
    async fn a_clear_or_an_insert_decides_the_value() {
        let mut client = app().await;
        client.get("/increment").await;
        assert_eq!(client.get("/clear-then-increment").await.body, "1");
        assert_eq!(client.get("/get").await.body, "1", "after a clear, from 0");
        assert_eq!(client.get("/increment-then-insert").await.body, "101");
        assert_eq!(client.get("/get").await.body, "101", "the insert wins");
    }

    #[tokio::test]
    async fn what_cannot_be_added_is_422_and_changes_nothing() {
        let mut client = app().await;
        client.get("/text").await;
        let reply = client.get("/increment").await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (422, "session value is not an integer\n")
        );
        assert_eq!(client.get("/get").await.body, "\"ten\"");
        client.get("/max").await;
        let reply = client.get("/increment").await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (422, "session value would overflow\n")
        );
        assert_eq!(client.get("/get").await.body, i64::MAX.to_string());
    }
}
