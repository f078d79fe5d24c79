//! The load tester: simulated HLS viewers against an edge, and the reports
//! an operator reads.
//!
//! Two binaries share it: `loadtest` (one run: [`run`], then
//! [`report::write`]) and `loadtest-compare` (one page over many runs'
//! `report.json`: [`compare`]).
//!
//! Modules: [`settings`] (flags and safety rules), [`viewer`] (one player),
//! [`llviewer`] (one LL-HLS player), [`llhls`] (the LL-HLS playlist),
//! [`stats`] (shared measurements), [`run`] (a run, its sampling, the
//! report), [`model`] (the `report.json` schema), [`report`] (HTML and the
//! printed summary), [`plot`] (SVG charts and number formatting),
//! [`gate`] (`--fail-on`), [`compare`] (the comparison page).

pub mod compare;
pub mod gate;
pub mod llhls;
pub mod llviewer;
pub mod model;
pub mod plot;
pub mod report;
pub mod run;
pub mod settings;
pub mod stats;
pub mod viewer;
