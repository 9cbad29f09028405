//! pgdrill's integration tests: one binary, one module per topic. Every test runs the real
//! `pgdrill` binary against real PostgreSQL servers it starts itself; nothing is mocked.

mod support;

mod app;
mod app_controller;
mod architecture;
mod backup_file;
mod barman;
mod cleanup;
mod cli;
mod code;
mod config;
mod controls;
mod docker;
mod drill;
mod events;
mod evidence;
mod faults;
mod fleet;
mod forecast;
mod full;
mod history;
mod integrity;
mod junit;
mod leftovers;
mod library;
mod notify;
mod objectives;
mod parsers;
mod pitr;
mod prometheus;
mod real_db;
mod regime;
mod restore;
mod rollback;
mod rpo;
mod runbook;
mod schedule;
mod seed;
mod server_settings;
mod snapshot;
mod source_dsn;
mod speed;
mod tablespaces;
