//! The OpenAPI document: every route the router serves is in it with each of its methods,
//! and everything in it is served. The router's own table is read from its `Debug` output
//! (axum has no other way to list routes), so a route added without its operation fails here.

use crate::helpers::*;
use std::collections::BTreeSet;

/// (method, path) of every route in a router's `Debug` text.
fn served(debug: &str) -> BTreeSet<(String, String)> {
    // The fallback router numbers its routes anew: read only the main one.
    let debug = debug.split(", fallback_router:").next().unwrap_or(debug);
    let mut paths = std::collections::HashMap::new();
    for piece in debug.split("RouteId(").skip(1) {
        let Some((id, tail)) = piece.split_once("): \"") else {
            continue;
        };
        let path = tail.split('"').next().unwrap_or("");
        paths.insert(id.to_owned(), path.to_owned());
    }
    let mut routes = BTreeSet::new();
    for piece in debug.split("RouteId(").skip(1) {
        let Some((id, tail)) = piece.split_once("): MethodRouter(MethodRouter { ") else {
            continue;
        };
        let fields = tail.split("fallback:").next().unwrap_or("");
        for field in fields.split(", ") {
            let Some((method, value)) = field.split_once(": ") else {
                continue;
            };
            if value.trim() != "None" && method != "head" {
                if let Some(path) = paths.get(id).filter(|p| !p.contains("__private__axum")) {
                    routes.insert((method.to_ascii_uppercase(), path.clone()));
                }
            }
        }
    }
    routes
}

#[tokio::test]
async fn every_route_served_is_documented_and_every_documented_one_served() {
    let app = TestApp::spawn().await;
    let response = app
        .request(reqwest::Method::GET, "/api/openapi.json", None)
        .await;
    let document = response.assert(200).clone();
    assert_eq!(document["openapi"], "3.1.0");
    let routes = served(&format!("{:?}", kiln_server::routes(app.state.clone())));
    assert!(
        routes.len() > 100,
        "the router's table was not read: {routes:?}"
    );
    let documented: BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, methods)| {
            methods
                .as_object()
                .into_iter()
                .flatten()
                .map(move |(method, _)| (method.to_ascii_uppercase(), path.clone()))
        })
        .collect();
    let as_openapi = |path: &str| path.replace("{*", "{");
    let missing: Vec<_> = routes
        .iter()
        .filter(|(m, p)| !documented.contains(&(m.clone(), as_openapi(p))))
        .collect();
    assert!(
        missing.is_empty(),
        "served but not documented: {missing:#?}"
    );
    let served_paths: BTreeSet<(String, String)> = routes
        .iter()
        .map(|(m, p)| (m.clone(), as_openapi(p)))
        .collect();
    let extra: Vec<_> = documented.difference(&served_paths).collect();
    assert!(extra.is_empty(), "documented but not served: {extra:#?}");
    // Every reference resolves.
    let text = document.to_string();
    for name in text.split("#/components/schemas/").skip(1) {
        let name = name.split('"').next().unwrap_or("");
        assert!(
            document["components"]["schemas"][name].is_object(),
            "no schema {name}"
        );
        // An answer documented only as "some object" says nothing about it.
        assert_ne!(name, "Object", "an operation answers an undescribed object");
    }
    assert_eq!(
        document["components"]["securitySchemes"]["privateToken"]["name"],
        "PRIVATE-TOKEN"
    );
}
