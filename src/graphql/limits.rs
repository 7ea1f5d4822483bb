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

/// Serves descriptions with their paragraphs unwrapped. Doc comments are
/// wrapped at 80 columns in the code; GraphiQL renders every newline as a
/// break, so wrapped lines would show ragged in its docs. Only the
/// introspection types' `description` fields are touched.
pub struct UnwrappedDescriptions;

impl ExtensionFactory for UnwrappedDescriptions {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(UnwrappedDescriptions)
    }
}

#[async_trait::async_trait]
impl Extension for UnwrappedDescriptions {
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: async_graphql::extensions::ResolveInfo<'_>,
        next: async_graphql::extensions::NextResolve<'_>,
    ) -> ServerResult<Option<async_graphql::Value>> {
        let introspected = info.name == "description" && info.parent_type.starts_with("__");
        let value = next.run(ctx, info).await?;
        Ok(match value {
            Some(async_graphql::Value::String(text)) if introspected => Some(unwrap(&text).into()),
            other => other,
        })
    }
}

/// Joins the lines of each paragraph; blank lines and list items start
/// new lines.
pub fn unwrap(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut previous_blank = true;
    for line in text.lines().map(str::trim) {
        let item = line.starts_with("- ") || line.starts_with("* ") || line.starts_with('|');
        if line.is_empty() {
            out.push_str("\n\n");
        } else if previous_blank {
            out.push_str(line);
        } else {
            out.push(if item { '\n' } else { ' ' });
            out.push_str(line);
        }
        previous_blank = line.is_empty();
    }
    out.trim().to_owned()
}
