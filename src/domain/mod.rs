//! Domain types: values parsed once at the boundary (emails, slugs) and the member model with
//! its access state machine. Nothing here does I/O or knows about SQL or HTTP.

pub mod attribute;
pub mod currency;
mod email;
mod member;
pub mod phone;
mod slug;

pub use email::{Email, EmailError};
pub use member::{
    Access, AccessView, Activity, ActivityKind, Member, Role, UnknownVariant, display_name_of,
};
pub use phone::{Phone, PhoneError};
pub use slug::{Slug, SlugError};
