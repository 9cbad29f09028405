//! A fleet file: read or refused naming the file; a read one plans on every engine.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let path = std::path::Path::new("fleet.toml");
    match pgdrill::fleet::Fleet::parse(path, text.to_string()) {
        Ok(fleet) => {
            for engine in [
                pgdrill::fleet::plan::Engine::Swarm,
                pgdrill::fleet::plan::Engine::Kubernetes,
                pgdrill::fleet::plan::Engine::Github,
            ] {
                assert!(!pgdrill::fleet::plan::plan(&fleet, engine, "fleet.toml").is_empty());
            }
        }
        Err(e) => assert!(e.to_string().starts_with("fleet file fleet.toml: "), "{e}"),
    }
});
