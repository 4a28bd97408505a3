use crate::helpers::*;

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    let r = app.call(reqwest::Method::GET, "/healthz", None, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "ok");
    let r = app.call(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["database"], "ok");
    assert!(
        r.headers.get("x-request-id").is_some(),
        "every answer carries a request id"
    );
}

#[tokio::test]
async fn readiness_fails_when_the_database_is_gone() {
    let app = spawn_app().await;
    app.store.close().await;
    let r = app.call(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.body["database"], "unreachable");
}

#[tokio::test]
async fn unknown_routes_and_methods_get_problem_bodies() {
    let app = spawn_app().await;
    let r = app.get("/api/v1/nope", OPERATOR).await;
    assert_problem(&r, 404);
    let r = app.call(reqwest::Method::PUT, "/healthz", None, None).await;
    assert_problem(&r, 405);
}
