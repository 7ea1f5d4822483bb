//! Limits on what one GraphQL document may ask for, beyond the depth and
//! complexity limits the engine enforces itself.

use std::sync::Arc;

use async_graphql::{
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery},
    parser::types::{ExecutableDocument, Selection, SelectionSet},
    Positioned, ServerResult, Variables,
};

/// Refuses documents with more than `max` aliased fields (aliases are how
/// one request multiplies expensive fields).
pub struct AliasLimit {
    pub max: usize,
}

impl ExtensionFactory for AliasLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AliasLimit { max: self.max })
    }
}

#[async_trait::async_trait]
impl Extension for AliasLimit {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let aliases: usize = document.operations.iter().map(|(_, op)| count(&op.node.selection_set)).sum::<usize>()
            + document.fragments.values().map(|f| count(&f.node.selection_set)).sum::<usize>();
        if aliases > self.max {
            let message = format!("the document has {aliases} aliases; at most {} are allowed", self.max);
            return Err(super::errors::coded(message, "BAD_USER_INPUT"));
        }
        Ok(document)
    }
}

fn count(set: &Positioned<SelectionSet>) -> usize {
    set.node
        .items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => usize::from(f.node.alias.is_some()) + count(&f.node.selection_set),
            Selection::InlineFragment(f) => count(&f.node.selection_set),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}
