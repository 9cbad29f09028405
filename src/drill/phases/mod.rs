//! The phases of a drill, one module per group of the strategy's steps; each phase is a
//! function taking `&mut Ctx` and its typed inputs and returning its typed output, run by
//! `drill::run_step` in the order of `drill::scenario`.

pub(super) mod app;
pub(super) mod backup;
pub(super) mod checklist;
pub(super) mod code;
pub(super) mod config;
pub(super) mod controls;
pub(super) mod disaster;
pub(super) mod live;
pub(super) mod pitr;
pub(super) mod provision;
pub(super) mod restore;
pub(super) mod rpo;
pub(super) mod seed;
pub(super) mod verify;
