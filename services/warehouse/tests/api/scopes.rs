//! Every route of the document needs its scope, on its listener
//! (`testing::scopes`): a new route is covered without a test of its own.

use omnisaga_runtime::testing;

use crate::helpers::spawn_app;

#[tokio::test]
async fn every_operation_answers_403_without_the_scope_its_document_names() {
    let app = spawn_app().await;
    let document = omnisaga_warehouse::api::document();
    let checked =
        testing::scopes::assert_every_operation_needs_its_scope(&document, &app.url, &app.admin_url).await;
    assert!(checked > 0, "the document names no scoped operation");
}
