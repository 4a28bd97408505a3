//! Connector read benchmark: each connector reads 100 000 records from its local fake server
//! (or file) into the normalized record stream, with nothing applied — records/s and peak
//! memory of the process (VmHWM, reset before each read).
//!
//!     cargo bench --bench connectors            # ROSTERD_BENCH_RECORDS=N for another size

use std::time::Instant;

#[path = "../tests/api/slapd.rs"]
mod slapd;

use axum::extract::Query;
use rosterd_connectors::{Context, Mapping, SourceKind};
use serde_json::{Value, json};

fn kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

type Q = Query<std::collections::HashMap<String, String>>;

fn num(q: &Q, k: &str, d: usize) -> usize {
    q.get(k).and_then(|v| v.parse().ok()).unwrap_or(d)
}

fn user(i: usize) -> Value {
    json!({"id": i, "email": format!("person{i}@bench.example"), "firstname": "Ada",
           "lastname": "Lovelace", "suspended": false})
}

fn worker(i: usize) -> Value {
    json!({"id": format!("{i:032x}"), "descriptor": format!("Worker {i}"),
           "primaryWorkEmail": format!("w{i}@bench.example"), "businessTitle": "Analyst",
           "primarySupervisoryOrganization": {"id": "b5ad", "descriptor": "Finance"}})
}

fn graph_user(i: usize) -> Value {
    json!({"id": format!("00000000-0000-4000-8000-{i:012}"), "mail": format!("g{i}@bench.example"),
           "userPrincipalName": format!("g{i}@bench.onmicrosoft.com"), "givenName": "Ada",
           "surname": "Lovelace", "accountEnabled": true})
}

async fn fake(n: usize) -> String {
    use axum::routing::{get, post};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let router = axum::Router::new()
        .route(
            "/{tenant}/oauth2/v2.0/token",
            post(|| async {
                axum::Json(json!({"access_token": "g", "token_type": "Bearer", "expires_in": 3599}))
            }),
        )
        .route(
            "/v1.0/users/delta",
            get(move |q: Q| {
                let base = base.clone();
                async move {
                    // Graph's delta pages, with absolute next links and a delta link at the end.
                    const PAGE: usize = 500;
                    let off = num(&q, "$skiptoken", 0);
                    let value: Vec<Value> = (off..(off + PAGE).min(n)).map(graph_user).collect();
                    let mut page = json!({ "value": value });
                    if off + PAGE < n {
                        page["@odata.nextLink"] =
                            json!(format!("{base}/v1.0/users/delta?$skiptoken={}", off + PAGE));
                    } else {
                        page["@odata.deltaLink"] =
                            json!(format!("{base}/v1.0/users/delta?$deltatoken=1"));
                    }
                    axum::Json(page)
                }
            }),
        )
        .route(
            "/users",
            get(move |q: Q| async move {
                let (off, lim) = (num(&q, "offset", 0), num(&q, "limit", 100));
                let data: Vec<Value> = (off..(off + lim).min(n)).map(user).collect();
                axum::Json(json!({ "users": data }))
            }),
        )
        .route(
            "/ccx/oauth2/acme/token",
            post(|| async {
                axum::Json(json!({"access_token": "t", "token_type": "Bearer", "expires_in": 3600}))
            }),
        )
        .route(
            "/ccx/api/v1/acme/workers",
            get(move |q: Q| async move {
                let (off, lim) = (num(&q, "offset", 0), num(&q, "limit", 20).min(100));
                let data: Vec<Value> = (off..(off + lim).min(n)).map(worker).collect();
                axum::Json(json!({ "total": n, "data": data }))
            }),
        );
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr.to_string()
}

async fn read(label: &str, kind: SourceKind, mapping: Mapping, ctx: &Context, n: usize) {
    reset_peak();
    let before = kib("VmRSS:");
    let t = Instant::now();
    let mut snap = kind.open(&mapping, ctx, None).await.unwrap();
    let mut rows = 0usize;
    while let Some(r) = snap.next().await {
        let (_, rec) = r.unwrap();
        rec.unwrap();
        rows += 1;
    }
    let took = t.elapsed();
    assert_eq!(rows, n, "{label}");
    let peak = kib("VmHWM:");
    println!(
        "| {label} | {n} | {:.2} s | {:.0} records/s | {:.0} MB (+{:.0} MB) |",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        peak as f64 / 1024.0,
        peak.saturating_sub(before) as f64 / 1024.0
    );
}

fn main() {
    let n: usize = std::env::var("ROSTERD_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let host = fake(n).await;
        let dir = std::env::temp_dir().join(format!("rosterd-bench-conn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("secret");
        std::fs::write(&secret, "s").unwrap();
        let csv = dir.join("roster.csv");
        {
            use std::io::Write;
            let mut f = std::io::BufWriter::new(std::fs::File::create(&csv).unwrap());
            writeln!(f, "ID,IsActive,FirstName,LastName,MemberID,IsAuthRep").unwrap();
            for i in 0..n {
                writeln!(f, "E{i},True,Ada,Lovelace,person{i}@bench.example,False").unwrap();
            }
        }
        let ctx = Context::new(std::path::PathBuf::from("."), std::time::Duration::from_secs(60)).unwrap();
        let parse = |t: &str| -> (SourceKind, Mapping) {
            let (kind, mapping) = t.split_once("[mapping]").unwrap();
            (
                toml::from_str::<SourceKind>(kind).unwrap(),
                toml::from_str(mapping).unwrap(),
            )
        };
        println!("| connector | records | time | rate | peak RSS |");
        println!("| --- | --- | --- | --- | --- |");
        let (k, m) = parse(&format!(
            "kind = \"csv\"\npath = {:?}\n[mapping]\nexternal_id = \"ID\"\nmember_email = \"MemberID\"\ngiven_name = \"FirstName\"\nfamily_name = \"LastName\"\nactive = {{ field = \"IsActive\", map = {{ \"True\" = \"true\", \"False\" = \"false\" }} }}\n",
            csv.display().to_string()
        ));
        read("CSV file", k, m, &ctx, n).await;
        let (k, m) = parse(&format!(
            "kind = \"http_json\"\nurl = \"http://{host}/users\"\nrecords_path = \"users\"\npagination = {{ style = \"offset\", limit = 1000 }}\n[mapping]\nexternal_id = \"id\"\nmember_email = \"email\"\ngiven_name = \"firstname\"\nfamily_name = \"lastname\"\nactive = {{ field = \"suspended\", map = {{ \"true\" = \"false\", \"false\" = \"true\" }} }}\n"
        ));
        read("HTTP JSON (offset, 1 000 per page)", k, m, &ctx, n).await;
        let (k, m) = parse(&format!(
            "kind = \"workday\"\nhost = \"{host}\"\ntenant = \"acme\"\ninsecure_http = true\nauth = {{ type = \"oauth2_refresh_token\", client_id = \"c\", client_secret = \"file:{s}\", refresh_token = \"file:{s}\" }}\n[mapping]\nexternal_id = \"id\"\nmember_email = \"primaryWorkEmail\"\ndisplay_name = \"descriptor\"\n",
            s = secret.display()
        ));
        read("Workday workers (100 per page)", k, m, &ctx, n).await;
        // Graph: the first (full) delta round.
        let (k, m) = parse(&format!(
            "kind = \"graph\"\ntenant = \"bench\"\nclient_id = \"c\"\nclient_secret = \"file:{s}\"\ngraph_url = \"http://{host}\"\nlogin_url = \"http://{host}\"\n[mapping]\nexternal_id = \"id\"\nmember_email = \"mail\"\nlogin_email = \"userPrincipalName\"\ngiven_name = \"givenName\"\nfamily_name = \"surname\"\nactive = \"accountEnabled\"\n",
            s = secret.display()
        ));
        read("Microsoft Graph users/delta (500 per page)", k, m, &ctx, n).await;
        // LDAP: a real slapd holding n users, read over StartTLS in pages of 1 000.
        let t = Instant::now();
        let server = slapd::Slapd::start_with(&slapd::users_ldif(0..n)).await;
        eprintln!("slapd loaded {n} users in {:.1} s", t.elapsed().as_secs_f64());
        std::fs::write(dir.join("pw"), slapd::BIND_PASSWORD).unwrap();
        let (k, m) = parse(&format!(
            "kind = \"ldap\"\nurl = \"{url}\"\nca_file = \"{ca}\"\nbind_dn = \"{bind}\"\nbind_password = \"file:{pw}\"\nbase_dn = \"{people}\"\nfilter = \"(objectClass=adUser)\"\npage_size = 1000\n[mapping]\nexternal_id = \"objectGUID\"\nmember_email = \"mail\"\nlogin_email = \"userPrincipalName\"\ngiven_name = \"givenName\"\nfamily_name = \"sn\"\nactive = \"enabled\"\n",
            url = server.ldap_url(),
            ca = server.ca_file().display(),
            bind = slapd::BIND_DN,
            pw = dir.join("pw").display(),
            people = slapd::PEOPLE,
        ));
        read("LDAP (slapd, StartTLS, paged 1 000)", k, m, &ctx, n).await;
        server.stop().await;
        let _ = std::fs::remove_dir_all(&dir);
    });
}
