//! One module per page: a handler that asks [`vexxy_server::queries`]
//! (or the service's review and submission calls) and a template struct
//! holding exactly what the page shows.

pub(crate) mod compare;
pub(crate) mod dashboard;
pub(crate) mod image;
pub(crate) mod images;
pub(crate) mod review;
pub(crate) mod statement;
pub(crate) mod submit;
