//! Phase `provision`: the backend, the first disposable server, and (docker backend) the
//! application's image, checked before any data is made.

use super::{Ctx, PhaseId};
use crate::env::{Backend, BackendKind};
use crate::plan::Source;

/// Opens the backend and provisions the source (generated data) or the restore target; the
/// servers go into `ctx.owned`, the app image into `ctx.app_image`. Returns the backend kind.
pub(super) async fn run(ctx: &mut Ctx) -> Option<BackendKind> {
    let kind = ctx.plan.backend;
    let drill_id = ctx.plan.drill_id.clone();
    let keep = ctx.plan.keep;
    let wants_source = matches!(ctx.plan.source, Source::Generated { .. });
    let sample_binary = match ctx.plan.app.as_ref().map(|a| &a.spec) {
        Some(crate::app::AppSpec::Sample { binary, .. }) => Some(binary.clone()),
        _ => None,
    };
    let custom_image = ctx
        .plan
        .app
        .as_ref()
        .and_then(|a| a.spec.image())
        .map(|i| i.image.clone());
    let (backend, target, app_image) = ctx
        .rec
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
            let target = backend.provision(role).await?;
            let mut detail = format!(
                "{} backend ({}): {}",
                backend.kind(),
                if kind == BackendKind::Auto {
                    "chosen by --backend auto"
                } else {
                    "requested"
                },
                target.describe()
            );
            if let Some((image, _)) = &app_image {
                detail.push_str(&format!("; the application runs as a container of {image}"));
            }
            Ok(((backend, target, app_image), detail))
        })
        .await?;
    if let Some((image, note)) = app_image {
        ctx.app_image = Some(image);
        ctx.notes.extend(note);
    }
    let kind = backend.kind();
    ctx.owned.backend = Some(backend);
    if wants_source {
        ctx.owned.source = Some(target);
    } else {
        ctx.owned.target = Some(target);
    }
    Some(kind)
}
