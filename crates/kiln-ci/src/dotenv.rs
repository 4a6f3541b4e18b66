//! `artifacts:reports:dotenv` as GitLab reads it (`Ci::ParseDotenvArtifactService`): one
//! `KEY=VALUE` per line, both sides stripped, the first `=` splitting them; a later key wins;
//! no empty lines, comments or quotes handling; at most 20 variables; keys of letters, digits
//! and `_`. The messages are GitLab's.

/// GitLab's `MAX_ACCEPTABLE_DOTENV_SIZE`: the uploaded (gzip) report must be smaller.
pub const MAX_REPORT_BYTES: usize = 5 * 1024;
/// GitLab's default `dotenv_variables` plan limit.
pub const MAX_VARIABLES: usize = 20;

/// The variables of a dotenv report's text, or GitLab's message for why it is refused.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut variables: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| "Invalid Format".to_owned())?;
        let (key, value) = (key.trim(), value.trim());
        let valid = !key.is_empty()
            && key.len() <= 255
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err("Validation failed: Key can contain only letters, digits and '_'.".into());
        }
        match variables.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.to_owned(),
            None => variables.push((key.to_owned(), value.to_owned())),
        }
    }
    if variables.len() > MAX_VARIABLES {
        return Err(format!(
            "Dotenv files cannot have more than {MAX_VARIABLES} variables"
        ));
    }
    Ok(variables)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_like_gitlab() {
        let vars = parse("A=1\n B = two words \nURL=http://x/?a=b\nA=again\n").unwrap();
        assert_eq!(
            vars,
            [
                ("A".to_string(), "again".to_string()),
                ("B".to_string(), "two words".to_string()),
                ("URL".to_string(), "http://x/?a=b".to_string()),
            ]
        );
        assert_eq!(
            parse("A=1\n\nB=2\n").err().as_deref(),
            Some("Invalid Format")
        );
        assert_eq!(parse("# note\n").err().as_deref(), Some("Invalid Format"));
        assert!(parse("BAD-KEY=1\n")
            .unwrap_err()
            .starts_with("Validation failed"));
        let many: String = (0..21).map(|i| format!("V{i}=x\n")).collect();
        assert_eq!(
            parse(&many).err().as_deref(),
            Some("Dotenv files cannot have more than 20 variables")
        );
    }
}
