//! Phase `provision`: the backend, the first disposable server, and (docker backend) the
//! application's image, checked before any data is made.

use crate::drill::kernel::Recorder;
use crate::drill::PhaseId;
use crate::env::{Backend, BackendKind, Target};
use crate::plan::{Plan, Source};

/// What `provision` opened: everything after it runs on these.
pub(in crate::drill) struct Provisioned {
    /// Where servers come from (a real restore has none).
    pub backend: Option<Backend>,
    /// The first server: the source of generated data, or the restore's target when there is
    /// no disaster (an existing backup file); none for a live source, whose restore target
    /// replaces the "lost" server inside the RTO clock (`replace_server`).
    pub server: Option<Target>,
    /// The application's image, when it runs as a container.
    pub app_image: Option<String>,
}

impl Provisioned {
    /// Nothing opened: a plan that needs no server (a code rollback, a configuration restore).
    pub fn nothing() -> Provisioned {
        Provisioned {
            backend: None,
            server: None,
            app_image: None,
        }
    }
}

/// Opens the backend and provisions the source (generated data) or the restore target, and
/// (docker backend) checks the application's image.
pub(in crate::drill) async fn run(
    plan: &Plan,
    rec: &mut Recorder,
    notes: &mut Vec<String>,
) -> Option<Provisioned> {
    let kind = plan.backend;
    let drill_id = plan.drill_id.clone();
    let keep = plan.keep;
    let wants_source = matches!(plan.source, Source::Generated { .. });
    // A point-in-time recovery's server is its restored data directory (`pitr_restore`).
    let wants_server = !matches!(plan.source, Source::Dsn(_) | Source::Pitr(_));
    let pitr = matches!(plan.source, Source::Pitr(_));
    // The first server gets the restore target's settings only when the restore goes into
    // it: an existing backup, or generated data whose database is dropped (drop-db); after a
    // server loss they go to its replacement (`replace_server`).
    let first_is_target = !wants_source || plan.disaster == crate::plan::Disaster::DropDb;
    let settings = if first_is_target {
        plan.server.clone()
    } else {
        crate::pg::settings::ServerSettings::default()
    };
    let sample_binary = match plan.app.as_ref().map(|a| &a.spec) {
        Some(crate::app::AppSpec::Sample { binary, .. }) => Some(binary.clone()),
        _ => None,
    };
    let custom_image = plan
        .app
        .as_ref()
        .and_then(|a| a.spec.image())
        .map(|i| i.image.clone());
    let (backend, server, app_image) = rec
        .step(PhaseId::Provision, async {
            let mut backend = Backend::open(kind, &drill_id).await?;
            backend.set_keep(keep);
            // On the docker backend the sample app is a container too; its image is
            // checked before any data is made, so a missing one costs nothing.
            let app_image = match (backend.docker(), &sample_binary, &custom_image) {
                (Some(b), Some(binary), _) => Some(b.app_image(Some(binary)).await?),
                (Some(b), None, Some(image)) => Some((b.custom_app_image(image).await?, None)),
                _ => None,
            };
            let role = if wants_source { "source" } else { "target" };
            let target = match wants_server {
                true => Some(backend.provision_with(role, &settings).await?),
                false => None,
            };
            let mut detail = format!(
                "{} backend ({}): {}",
                backend.kind(),
                if kind == BackendKind::Auto {
                    "chosen by --backend auto"
                } else {
                    "requested"
                },
                target.as_ref().map_or_else(
                    || match pitr {
                        true => "the restore's server is started on the data directory pitr_restore fills",
                        false => "the restore's server is provisioned after the disaster (replace_server)",
                    }
                    .to_string(),
                    |t| t.describe()
                )
            );
            // Settings are told where a server started with them.
            if target.is_some() && !settings.is_empty() {
                detail.push_str(&format!(
                    "; started with {}",
                    settings.assignments().join(", ")
                ));
            }
            if let Some((image, _)) = &app_image {
                detail.push_str(&format!("; the application runs as a container of {image}"));
            }
            Ok(((backend, target, app_image), detail))
        })
        .await?;
    let app_image = app_image.map(|(image, note)| {
        notes.extend(note);
        image
    });
    Some(Provisioned {
        backend: Some(backend),
        server,
        app_image,
    })
}
