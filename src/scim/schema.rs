//! The SCIM schemas rosterd serves (RFC 7643 §4, §8.7): core User, the enterprise User
//! extension and Group, with each attribute's type, mutability, returned, uniqueness and
//! caseExact. Served at `/Schemas`, and consulted for filter case rules and projections.

use serde_json::{Value, json};

use super::filter::{AttrInfo, AttrPath};

pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The org extension: each org's own member attributes (`roster::attributes`).
pub const ORG_USER: &str = "urn:ietf:params:scim:schemas:extension:rosterd:2.0:OrgUser";
pub const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const SEARCH: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
pub const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
pub const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

#[derive(Clone, Copy)]
struct A {
    ty: &'static str,
    multi: bool,
    required: bool,
    case_exact: bool,
    mutability: &'static str,
    returned: &'static str,
    uniqueness: &'static str,
}

const S: A = A {
    ty: "string",
    multi: false,
    required: false,
    case_exact: false,
    mutability: "readWrite",
    returned: "default",
    uniqueness: "none",
};

fn attr(name: &str, a: A, desc: &str, subs: Vec<Value>) -> Value {
    let mut v = json!({
        "name": name,
        "type": a.ty,
        "multiValued": a.multi,
        "description": desc,
        "required": a.required,
        "caseExact": a.case_exact,
        "mutability": a.mutability,
        "returned": a.returned,
        "uniqueness": a.uniqueness,
    });
    if a.ty == "complex" {
        v["subAttributes"] = Value::Array(subs);
        if let Some(o) = v.as_object_mut() {
            o.remove("caseExact");
            o.remove("uniqueness");
        }
    }
    if a.ty == "reference" {
        v["referenceTypes"] = json!(["external"]);
    }
    v
}

/// A reference to another SCIM resource type.
fn resource_ref(name: &str, mutability: &'static str, desc: &str, types: &[&str]) -> Value {
    let mut v = attr(
        name,
        A {
            ty: "reference",
            mutability,
            ..S
        },
        desc,
        vec![],
    );
    v["referenceTypes"] = json!(types);
    v
}

fn s(name: &str, desc: &str) -> Value {
    attr(name, S, desc, vec![])
}

fn b(name: &str, desc: &str) -> Value {
    attr(name, A { ty: "boolean", ..S }, desc, vec![])
}

/// The sub-attributes of a typical multi-valued attribute (`value`, `display`, `type`, `primary`).
fn mv(name: &str, desc: &str, types: &[&str]) -> Value {
    let mut ty = s("type", "A label indicating the attribute's function.");
    ty["canonicalValues"] = json!(types);
    attr(
        name,
        A {
            ty: "complex",
            multi: true,
            ..S
        },
        desc,
        vec![
            s("value", "The value."),
            s(
                "display",
                "A human-readable name, primarily used for display purposes.",
            ),
            ty,
            b("primary", "Whether this is the primary value."),
        ],
    )
}

pub fn user_schema() -> Value {
    let ro = A {
        mutability: "readOnly",
        ..S
    };
    let name = attr(
        "name",
        A { ty: "complex", ..S },
        "The components of the user's real name.",
        vec![
            s("formatted", "The full name, formatted for display."),
            s("familyName", "The family name."),
            s("givenName", "The given name."),
            s("middleName", "The middle name(s)."),
            s("honorificPrefix", "The honorific prefix(es)."),
            s("honorificSuffix", "The honorific suffix(es)."),
        ],
    );
    let address = attr(
        "addresses",
        A {
            ty: "complex",
            multi: true,
            ..S
        },
        "A physical mailing address for this user.",
        vec![
            s("formatted", "The full mailing address."),
            s("streetAddress", "The street address."),
            s("locality", "The city or locality."),
            s("region", "The state or region."),
            s("postalCode", "The zip code or postal code."),
            s("country", "The country name (ISO 3166-1 alpha-2)."),
            {
                let mut t = s("type", "A label indicating the address' function.");
                t["canonicalValues"] = json!(["work", "home", "other"]);
                t
            },
            b("primary", "Whether this is the primary address."),
        ],
    );
    let groups = attr(
        "groups",
        A {
            ty: "complex",
            multi: true,
            mutability: "readOnly",
            ..S
        },
        "The groups the user belongs to (managed through the Group resource).",
        vec![
            attr("value", ro, "The id of the group.", vec![]),
            resource_ref("$ref", "readOnly", "The URI of the group.", &["Group"]),
            attr("display", ro, "The name of the group.", vec![]),
            attr("type", ro, "direct or indirect.", vec![]),
        ],
    );
    // rosterd needs an address to reach the member: required here (a userName that is an
    // email address also does).
    let mut emails = mv(
        "emails",
        "Email addresses; the primary one is where invitations go.",
        &["work", "home", "other"],
    );
    emails["required"] = json!(true);
    emails["subAttributes"][0]["required"] = json!(true);
    json!({
        "id": USER,
        "name": "User",
        "description": "User Account",
        "attributes": [
            attr("userName", A { required: true, uniqueness: "server", ..S }, "Unique identifier for the user, used to sign in.", vec![]),
            name,
            s("displayName", "The name of the user, suitable for display."),
            s("nickName", "The casual way to address the user."),
            attr("profileUrl", A { ty: "reference", ..S }, "A URI of the user's online profile.", vec![]),
            s("title", "The user's title, such as \"Vice President\"."),
            s("userType", "The relationship between the organization and the user."),
            s("preferredLanguage", "The user's preferred written or spoken language."),
            s("locale", "The user's default location."),
            s("timezone", "The user's time zone (IANA)."),
            b("active", "Whether the user has access; false removes the member."),
            attr("password", A { mutability: "writeOnly", returned: "never", ..S }, "Ignored: never stored or returned.", vec![]),
            emails,
            mv("phoneNumbers", "Phone numbers.", &["work", "home", "mobile", "fax", "pager", "other"]),
            mv("ims", "Instant messaging addresses.", &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"]),
            mv("photos", "URLs of photos of the user.", &["photo", "thumbnail"]),
            address,
            groups,
            mv("entitlements", "Entitlements of the user.", &[]),
            mv("roles", "Roles of the user.", &[]),
            mv("x509Certificates", "Certificates of the user.", &[]),
        ],
        "meta": {"resourceType": "Schema", "location": format!("/scim/v2/Schemas/{USER}")}
    })
}

pub fn enterprise_schema() -> Value {
    let manager = attr(
        "manager",
        A { ty: "complex", ..S },
        "The user's manager.",
        vec![
            s("value", "The id of the manager's User resource."),
            resource_ref(
                "$ref",
                "readWrite",
                "The URI of the manager's User resource.",
                &["User"],
            ),
            attr(
                "displayName",
                A {
                    mutability: "readOnly",
                    ..S
                },
                "The manager's display name.",
                vec![],
            ),
        ],
    );
    json!({
        "id": ENTERPRISE,
        "name": "EnterpriseUser",
        "description": "Enterprise User",
        "attributes": [
            s("employeeNumber", "Identifier assigned by the organization."),
            s("costCenter", "Cost center."),
            s("organization", "Organization."),
            s("division", "Division."),
            s("department", "Department."),
            manager,
        ],
        "meta": {"resourceType": "Schema", "location": format!("/scim/v2/Schemas/{ENTERPRISE}")}
    })
}

pub fn group_schema() -> Value {
    let members = attr(
        "members",
        A {
            ty: "complex",
            multi: true,
            ..S
        },
        "The members of the group.",
        vec![
            attr(
                "value",
                A {
                    mutability: "immutable",
                    ..S
                },
                "The id of the member's User resource.",
                vec![],
            ),
            resource_ref("$ref", "immutable", "The URI of the member.", &["User"]),
            {
                let mut t = attr(
                    "type",
                    A {
                        mutability: "immutable",
                        ..S
                    },
                    "The type of member.",
                    vec![],
                );
                t["canonicalValues"] = json!(["User"]);
                t
            },
        ],
    );
    json!({
        "id": GROUP,
        "name": "Group",
        "description": "Group",
        "attributes": [
            attr("displayName", A { required: true, uniqueness: "server", ..S }, "The name of the group.", vec![]),
            members,
        ],
        "meta": {"resourceType": "Schema", "location": format!("/scim/v2/Schemas/{GROUP}")}
    })
}

pub fn all_schemas() -> Vec<Value> {
    vec![user_schema(), enterprise_schema(), group_schema()]
}

/// The org extension schema, describing the attributes of the calling client's org (none when
/// the caller is anonymous: discovery needs no token).
pub fn org_user_schema(defs: &[crate::store::attributes::AttributeDef]) -> Value {
    use crate::domain::attribute::AttrKind;
    let attributes: Vec<Value> = defs
        .iter()
        .map(|d| {
            let ty = match d.kind {
                AttrKind::Integer => "integer",
                AttrKind::Decimal => "decimal",
                AttrKind::Boolean => "boolean",
                AttrKind::String | AttrKind::Date | AttrKind::Choice => "string",
            };
            let desc = match (&d.description, d.kind) {
                (Some(text), _) => text.clone(),
                (None, AttrKind::Date) => "A date (YYYY-MM-DD).".to_owned(),
                (None, _) => format!("The organization's attribute {}.", d.name),
            };
            let mut v = attr(
                &d.name,
                A {
                    ty,
                    required: d.required,
                    case_exact: true,
                    uniqueness: if d.unique { "server" } else { "none" },
                    ..S
                },
                &desc,
                vec![],
            );
            if d.kind == AttrKind::Choice {
                v["canonicalValues"] = json!(d.options);
            }
            v
        })
        .collect();
    json!({
        "id": ORG_USER,
        "name": "OrgUser",
        "description": "The organization's own member attributes",
        "attributes": attributes,
        "meta": {"resourceType": "Schema", "location": format!("/scim/v2/Schemas/{ORG_USER}")}
    })
}

pub fn resource_types() -> Vec<Value> {
    vec![
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "User",
            "name": "User",
            "endpoint": "/Users",
            "description": "User Account",
            "schema": USER,
            "schemaExtensions": [
                {"schema": ENTERPRISE, "required": false},
                {"schema": ORG_USER, "required": false}
            ],
            "meta": {"resourceType": "ResourceType", "location": "/scim/v2/ResourceTypes/User"}
        }),
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "Group",
            "name": "Group",
            "endpoint": "/Groups",
            "description": "Group",
            "schema": GROUP,
            "schemaExtensions": [],
            "meta": {"resourceType": "ResourceType", "location": "/scim/v2/ResourceTypes/Group"}
        }),
    ]
}

/// Case and type rules for filters, per RFC 7643: `id`, `externalId`, `$ref`s and
/// `meta.version` compare case-sensitively; `meta.created` / `meta.lastModified` are dateTimes.
pub struct Rules;

impl AttrInfo for Rules {
    fn case_exact(&self, p: &AttrPath) -> bool {
        p.is("id", None)
            || p.is("externalId", None)
            || p.sub
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case("$ref"))
            || p.is("meta", Some("version"))
            || p.is("members", Some("value"))
            || p.is("groups", Some("value"))
    }

    fn is_datetime(&self, p: &AttrPath) -> bool {
        p.is("meta", Some("created")) || p.is("meta", Some("lastModified"))
    }
}
