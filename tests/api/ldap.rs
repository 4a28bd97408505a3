//! The LDAP connector against a real OpenLDAP `slapd` (see `slapd.rs`): StartTLS and LDAPS with
//! the server's own CA, a service account bound with a `file:` secret, a paged search over more
//! entries than the server returns without paging, AD attributes (objectGUID in Windows byte
//! order, userAccountControl's disabled bit, memberOf) and OpenLDAP ones (entryUUID, a disabled
//! filter), and a group mapped to a rosterd group.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::slapd::{self, Slapd};
use crate::sync::{spawn_with_sources, temp_dir};

/// More than the 1000 entries the service account may read without paging.
const USERS: usize = 1200;
/// A disabled account (userAccountControl 514).
const DISABLED: usize = USERS + 1;

fn counts(r: &Value) -> [i64; 5] {
    ["fetched", "created", "updated", "removed", "errors"].map(|k| r["counts"][k].as_i64().unwrap())
}

/// The plan of a run, as (action, email, external id).
async fn plan(app: &TestApp, org: &str, run: &Value) -> Vec<(String, String, String)> {
    let r = app
        .get(
            &format!(
                "/api/v1/orgs/{org}/runs/{}/plan?limit=1000",
                run["id"].as_str().unwrap()
            ),
            OPERATOR,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut out: Vec<(String, String, String)> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let s = |k: &str| i[k].as_str().unwrap_or_default().to_owned();
            (s("action"), s("email"), s("external_id"))
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn ldap_reads_a_real_directory_over_tls_in_pages_with_groups() {
    let mut ldif = slapd::users_ldif(1..USERS + 1);
    ldif.push_str(&slapd::disabled_user_ldif(DISABLED));
    ldif.push_str(&slapd::group_ldif("staff", &[1, 2, 3]));
    let server = Slapd::start_with(&ldif).await;
    let dir = temp_dir();
    let secret = |name: &str, value: &str| {
        let p = dir.join(name);
        std::fs::write(&p, value).unwrap();
        format!("file:{}", p.display())
    };
    // The CA outlives the server (step 5 stops it).
    let ca = dir.join("ca.pem");
    std::fs::copy(server.ca_file(), &ca).unwrap();
    let text = format!(
        r#"
[[sources]]
name = "ad"
org = "ad"
kind = "ldap"
url = "{ldap}"
ca_file = "{ca}"
bind_dn = "{bind}"
bind_password = "{pw}"
base_dn = "{people}"
filter = "(objectClass=adUser)"
page_size = 500
groups = {{ "CN=Staff, OU=Groups, DC=example, DC=org" = "Staff" }}
authoritative = true
max_removals = "100%"
[sources.mapping]
external_id = "objectGUID"
member_email = "mail"
login_email = "userPrincipalName"
given_name = "givenName"
family_name = "sn"
display_name = "displayName"
active = "enabled"

[[sources]]
name = "openldap"
org = "ol"
kind = "ldap"
flavor = "openldap"
url = "{ldaps}"
ca_file = "{ca}"
bind_dn = "{bind}"
bind_password = "{pw}"
base_dn = "{base}"
disabled_filter = "(employeeType=disabled)"
authoritative = true
max_removals = "100%"
[sources.mapping]
external_id = "entryUUID"
member_email = "mail"
active = "enabled"

[[sources]]
name = "wrong-password"
org = "bad"
kind = "ldap"
url = "{ldaps}"
ca_file = "{ca}"
bind_dn = "{bind}"
bind_password = "{wrong}"
base_dn = "{base}"
[sources.mapping]
external_id = "entryUUID"
member_email = "mail"

[[sources]]
name = "plain"
org = "bad"
kind = "ldap"
url = "{ldap}"
tls = "none"
bind_dn = "{bind}"
bind_password = "{pw}"
base_dn = "{base}"
[sources.mapping]
external_id = "entryUUID"
member_email = "mail"

[[sources]]
name = "https-unknown-ca"
org = "bad"
kind = "http_json"
url = "https://127.0.0.1:{ldaps_port}/users"
[sources.mapping]
external_id = "id"
member_email = "email"

[[sources]]
name = "unknown-ca"
org = "bad"
kind = "ldap"
url = "{ldaps}"
bind_dn = "{bind}"
bind_password = "{pw}"
base_dn = "{base}"
[sources.mapping]
external_id = "entryUUID"
member_email = "mail"
"#,
        ldap = server.ldap_url(),
        ldaps = server.ldaps_url(),
        ldaps_port = server.ldaps_port(),
        ca = ca.display(),
        bind = slapd::BIND_DN,
        pw = secret("pw", slapd::BIND_PASSWORD),
        wrong = secret("wrong", "not-the-password"),
        people = slapd::PEOPLE,
        base = slapd::BASE,
    );
    let app = spawn_with_sources(&["ad", "ol", "bad"], &text).await;

    // 1. AD-style over StartTLS: every user through pages of 500 (the account may not read
    // more than 1000 without paging); the disabled account is not created; the Staff group
    // is created with its three members.
    let r = app.run_source("ad", "ad").await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(counts(&r), [DISABLED as i64, USERS as i64, 0, 0, 0], "{r}");
    assert_eq!(
        app.group_members("ad", "Staff").await,
        ["Given1 Family1", "Given2 Family2", "Given3 Family3"]
    );

    // 2. A user disabled, one deleted, one renamed; Staff loses user 2 and gains user 4.
    server
        .modify(&slapd::set_uac_ldif(5, slapd::UAC_DISABLED))
        .await;
    server.delete(&slapd::user_dn(6)).await;
    server
        .modify(&format!(
            "dn: {}\nchangetype: modify\nreplace: givenName\ngivenName: Seven\n\n",
            slapd::user_dn(7)
        ))
        .await;
    server.modify(&slapd::add_members_ldif("staff", &[4])).await;
    server
        .modify(&slapd::remove_members_ldif("staff", &[2]))
        .await;
    let r = app.run_source("ad", "ad").await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(counts(&r), [DISABLED as i64 - 1, 0, 1, 2, 0], "{r}");
    // Members are linked by objectGUID in Windows byte order.
    let p = plan(&app, "ad", &r).await;
    let removals: Vec<(String, String, String)> =
        p.iter().filter(|i| i.0 == "remove").cloned().collect();
    assert_eq!(
        removals,
        [
            ("remove".into(), slapd::user_mail(5), slapd::user_guid(5)),
            ("remove".into(), slapd::user_mail(6), slapd::user_guid(6)),
        ]
    );
    assert_eq!(
        app.group_members("ad", "Staff").await,
        ["Given1 Family1", "Given3 Family3", "Given4 Family4"]
    );

    // 2b. A row with a bad mail but a readable id keeps that person's groups only: the directory
    // took users 1 and 3 out of Staff; user 3's row has an error, so 3 stays until a clean run,
    // while user 1 leaves at once.
    server
        .modify(&format!(
            "dn: {}\nchangetype: modify\nreplace: mail\nmail: not-an-email\n\n",
            slapd::user_dn(3)
        ))
        .await;
    server
        .modify(&slapd::remove_members_ldif("staff", &[1, 3]))
        .await;
    let r = app.run_source("ad", "ad").await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["counts"]["errors"], 1, "{r}");
    assert_eq!(
        r["counts"]["removed"], 0,
        "user 3's bad row never removes them: {r}"
    );
    assert_eq!(
        app.group_members("ad", "Staff").await,
        ["Given3 Family3", "Given4 Family4"]
    );
    server
        .modify(&format!(
            "dn: {}\nchangetype: modify\nreplace: mail\nmail: {}\n\n",
            slapd::user_dn(3),
            slapd::user_mail(3)
        ))
        .await;
    let r = app.run_source("ad", "ad").await;
    assert_eq!(r["counts"]["errors"], 0, "{r}");
    assert_eq!(app.group_members("ad", "Staff").await, ["Given4 Family4"]);

    // 3. OpenLDAP-style over LDAPS: entryUUID ids, and a disabled filter of the site's own.
    server
        .modify(&format!(
            "dn: {}\nchangetype: modify\nadd: employeeType\nemployeeType: disabled\n\n",
            slapd::user_dn(8)
        ))
        .await;
    let r = app.run_source("ol", "openldap").await;
    assert_eq!(r["status"], "succeeded", "{r}");
    // Everyone but the deleted user; users 5, 8 and the UAC-disabled one are not created.
    assert_eq!(
        counts(&r),
        [DISABLED as i64 - 1, USERS as i64 - 3, 0, 0, 0],
        "{r}"
    );
    let created = plan(&app, "ol", &r).await;
    let (_, email, id) = created.iter().find(|i| i.1 == slapd::user_mail(1)).unwrap();
    assert_eq!(email, &slapd::user_mail(1));
    assert!(
        uuid::Uuid::parse_str(id).is_ok() && id != &slapd::user_guid(1),
        "entryUUID, not objectGUID: {id}"
    );
    assert!(!created.iter().any(|i| i.1 == slapd::user_mail(8)));

    // 4. A wrong password fails the run with LDAP's answer, and never shows the password; a
    // server whose certificate no trusted CA signed is refused (TLS is verified by default).
    let r = app.run_source("bad", "wrong-password").await;
    assert_eq!(r["status"], "failed", "{r}");
    let msg = r["message"].as_str().unwrap();
    assert!(
        msg.contains("49") && msg.contains("invalid credentials"),
        "{msg}"
    );
    assert!(!msg.contains("not-the-password"), "{msg}");
    let r = app.run_source("bad", "unknown-ca").await;
    assert_eq!(r["status"], "failed", "{r}");
    let msg = r["message"].as_str().unwrap().to_lowercase();
    assert!(msg.contains("certificate"), "{msg}");
    assert_eq!(counts(&r)[0], 0, "{r}");
    // The same for an HTTPS source (here pointed at the LDAPS port: the handshake is refused
    // before any HTTP).
    let r = app.run_source("bad", "https-unknown-ca").await;
    assert_eq!(r["status"], "failed", "{r}");
    let msg = r["message"].as_str().unwrap().to_lowercase();
    assert!(msg.contains("certificate"), "{msg}");
    // Without TLS the directory refuses the bind (the connector's default is StartTLS, which
    // is why the `ad` source above could bind over ldap://).
    let r = app.run_source("bad", "plain").await;
    assert_eq!(r["status"], "failed", "{r}");
    let msg = r["message"].as_str().unwrap();
    assert!(msg.contains("LDAP result 13"), "{msg}");

    // 5. A directory that is down fails the run and removes nobody.
    let before = app.snapshot("ad").await;
    server.stop().await;
    let r = app.run_source("ad", "ad").await;
    assert_eq!(r["status"], "failed", "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("connecting to ldap://"),
        "{r}"
    );
    assert_eq!(app.snapshot("ad").await, before, "nothing changed");
    let _ = std::fs::remove_dir_all(dir);
}

/// Group sync holds back when a read looks wrong: no more than `max_removals` of a group leave
/// in one run, a group a SCIM client manages is left alone, and someone removed from the org
/// leaves the source's groups whatever the limit.
#[tokio::test]
async fn group_sync_holds_back_when_a_read_looks_wrong() {
    let mut ldif = slapd::users_ldif(1..11);
    ldif.push_str(&slapd::group_ldif("staff", &[1, 2, 3, 4, 5, 6]));
    ldif.push_str(&slapd::group_ldif("owned", &[1]));
    let server = Slapd::start_with(&ldif).await;
    let dir = temp_dir();
    let pw = dir.join("pw");
    std::fs::write(&pw, slapd::BIND_PASSWORD).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::copy(server.ca_file(), &ca).unwrap();
    let text = format!(
        r#"
[[sources]]
name = "g"
org = "grd"
kind = "ldap"
url = "{url}"
ca_file = "{ca}"
bind_dn = "{bind}"
bind_password = "file:{pw}"
base_dn = "{people}"
filter = "(objectClass=adUser)"
groups = {{ "{staff}" = "Staff", "{owned}" = "Owned", "cn=ghost,{groups}" = "Ghost" }}
authoritative = true
max_removals = 1
[sources.mapping]
external_id = "objectGUID"
member_email = "mail"
display_name = "displayName"
active = "enabled"
"#,
        url = server.ldaps_url(),
        ca = ca.display(),
        bind = slapd::BIND_DN,
        pw = pw.display(),
        people = slapd::PEOPLE,
        staff = slapd::group_dn("staff"),
        owned = slapd::group_dn("owned"),
        groups = slapd::GROUPS,
    );
    let app = spawn_with_sources(&["grd"], &text).await;
    // A SCIM client keeps a group called "Owned".
    let r = app
        .post(
            "/api/v1/orgs/grd/tokens",
            OPERATOR,
            json!({"kind": "scim", "name": "Okta"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let scim = r.body["token"].as_str().unwrap().to_owned();
    let r = app
        .scim(
            reqwest::Method::POST,
            "/Groups",
            &scim,
            Some(
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Owned", "members": []}),
            ),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);

    let r = app.run_source("grd", "g").await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["counts"]["created"], 10, "{r}");
    let staff = |n: std::ops::RangeInclusive<usize>| -> Vec<String> {
        n.map(|i| format!("Given{i} Family{i}")).collect()
    };
    assert_eq!(app.group_members("grd", "Staff").await, staff(1..=6));
    assert!(
        app.group_members("grd", "Owned").await.is_empty(),
        "SCIM's group untouched"
    );
    assert!(
        r["warnings"]
            .to_string()
            .contains("`Owned` is managed by a SCIM client"),
        "{r}"
    );

    // Three of six leave Staff in the directory: more than max_removals (1), so nobody leaves.
    server
        .modify(&slapd::remove_members_ldif("staff", &[1, 2, 3]))
        .await;
    let r = app.run_source("grd", "g").await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert!(
        r["warnings"].to_string().contains("more than max_removals"),
        "{r}"
    );
    assert_eq!(app.group_members("grd", "Staff").await, staff(1..=6));

    // User 6 is disabled and removed from the org: they leave Staff whatever the limit, while
    // the three the directory took out are still held back.
    server
        .modify(&slapd::set_uac_ldif(6, slapd::UAC_DISABLED))
        .await;
    let r = app.run_source("grd", "g").await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["counts"]["removed"], 1, "{r}");
    assert_eq!(app.group_members("grd", "Staff").await, staff(1..=5));

    // The CLI at trace level: the bind password appears nowhere in what it prints.
    let source = format!(
        "[[sources]]\nname = \"trace\"\norg = \"logs\"\nkind = \"ldap\"\nurl = \"{}\"\n\
         ca_file = \"{}\"\nbind_dn = \"{}\"\nbind_password = \"file:{}\"\nbase_dn = \"{}\"\n\
         filter = \"(objectClass=adUser)\"\n[sources.mapping]\nexternal_id = \"objectGUID\"\n\
         member_email = \"mail\"\n",
        server.ldap_url(),
        ca.display(),
        slapd::BIND_DN,
        pw.display(),
        slapd::PEOPLE
    );
    let (code, logs) = crate::http_json::cli_sync_at_trace(&source, "trace", 0).await;
    assert_eq!(code, 0, "{logs}");
    assert!(logs.contains("created 10"), "{logs}");
    assert!(logs.contains("TRACE") || logs.contains("DEBUG"), "{logs}");
    assert!(
        !logs.contains(slapd::BIND_PASSWORD),
        "the bind password leaked"
    );
    let _ = std::fs::remove_dir_all(dir);
}
