//! A row condition an operator wrote (`copy_tables(…, where)`): parsed with sqlparser's
//! MySQL grammar as exactly one expression, and sent to the source only as ottr renders it
//! again from the parse tree, so that no text around it (a second statement, a comment, a
//! `UNION`) can reach the server. Subqueries are refused: the condition is about the row.

use sqlparser::ast::{Expr, visit_expressions};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;
use std::ops::ControlFlow;

/// The condition `text` as ottr sends it, or why it cannot be one.
pub fn parse_condition(text: &str) -> Result<String, String> {
    let dialect = MySqlDialect {};
    let mut parser = Parser::new(&dialect)
        .try_with_sql(text)
        .map_err(|error| format!("the WHERE condition cannot be read ({error})"))?;
    let expr = parser
        .parse_expr()
        .map_err(|error| format!("the WHERE condition does not parse ({error})"))?;
    if parser.peek_token().token != Token::EOF {
        return Err(format!(
            "the WHERE condition must be one expression; it goes on at `{}`",
            parser.peek_token().token
        ));
    }
    let refused = visit_expressions(&expr, |expr| match expr {
        Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => {
            ControlFlow::Break("a subquery")
        }
        _ => ControlFlow::Continue(()),
    });
    if let ControlFlow::Break(what) = refused {
        return Err(format!(
            "the WHERE condition holds {what}: it may name only the row's columns"
        ));
    }
    let rendered = expr.to_string();
    if rendered.contains(":=") {
        return Err("the WHERE condition assigns a variable".into());
    }
    Ok(rendered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_expression_is_rendered_again_and_anything_more_is_refused() {
        assert_eq!(
            parse_condition("id > 10 AND `name` LIKE 'a%'").unwrap(),
            "id > 10 AND `name` LIKE 'a%'"
        );
        assert_eq!(
            parse_condition("created_at >= '2026-01-01' -- recent").unwrap(),
            "created_at >= '2026-01-01'"
        );
        let second = parse_condition("1 = 1; DROP TABLE t").unwrap_err();
        assert!(second.contains("one expression"), "{second}");
        let union =
            parse_condition("1) UNION SELECT password FROM mysql.user WHERE (1").unwrap_err();
        assert!(union.contains("one expression"), "{union}");
        let subquery = parse_condition("id IN (SELECT id FROM other)").unwrap_err();
        assert!(subquery.contains("subquery"), "{subquery}");
        let broken = parse_condition("id >").unwrap_err();
        assert!(broken.contains("does not parse"), "{broken}");
    }
}
