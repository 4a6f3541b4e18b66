//! What the compiler may ask of the repository at the pipeline's commit: a file's text (for
//! `include: local` and `rules: exists`), the list of its files (for globs in both), and the
//! files the pushed change touched (for `rules: changes`). The caller answers from git; the
//! compiler itself does no I/O. A plain `Fn(&str) -> Option<String>` is a repository that
//! can only read files.

use std::cell::OnceCell;

/// The repository at the pipeline's commit.
pub trait Repository {
    /// The text of the file at `path` (relative, no leading `/`); None if there is none.
    fn read_file(&self, path: &str) -> Option<String>;
    /// Every file of the commit, relative paths. Empty when unknown: globs then match nothing.
    fn files(&self) -> Vec<String> {
        Vec::new()
    }
    /// The files the push changed, when the pipeline is for a push of a branch whose previous
    /// commit is known; None otherwise, and then every `rules: changes` holds, as in GitLab.
    fn changed_files(&self) -> Option<Vec<String>> {
        None
    }
    /// The git object id of the file at `path` (for `cache: key: files:`); by default the
    /// id git gives the text `read_file` answers.
    fn blob_id(&self, path: &str) -> Option<String> {
        self.read_file(path)
            .map(|text| git_blob_id(text.as_bytes()))
    }
}

/// What `git hash-object` prints for a file holding `bytes`.
pub fn git_blob_id(bytes: &[u8]) -> String {
    let mut hasher = <sha1::Sha1 as sha1::Digest>::new();
    sha1::Digest::update(&mut hasher, format!("blob {}\0", bytes.len()).as_bytes());
    sha1::Digest::update(&mut hasher, bytes);
    hex_of(&sha1::Digest::finalize(hasher))
}

/// Lower-case hex SHA-1 of `bytes`.
pub(crate) fn sha1_hex(bytes: &[u8]) -> String {
    hex_of(&<sha1::Sha1 as sha1::Digest>::digest(bytes))
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl<F: Fn(&str) -> Option<String>> Repository for F {
    fn read_file(&self, path: &str) -> Option<String> {
        self(path)
    }
}

/// No repository at all (a lint of text alone): no file exists.
pub struct NoRepository;

impl Repository for NoRepository {
    fn read_file(&self, _: &str) -> Option<String> {
        None
    }
}

/// A repository with its lists asked for at most once per compile.
pub(crate) struct Checkout<'a> {
    repo: &'a dyn Repository,
    files: OnceCell<Vec<String>>,
    changed: OnceCell<Option<Vec<String>>>,
}

impl<'a> Checkout<'a> {
    pub(crate) fn new(repo: &'a dyn Repository) -> Checkout<'a> {
        Checkout {
            repo,
            files: OnceCell::new(),
            changed: OnceCell::new(),
        }
    }

    pub(crate) fn read_file(&self, path: &str) -> Option<String> {
        self.repo.read_file(path)
    }

    pub(crate) fn blob_id(&self, path: &str) -> Option<String> {
        self.repo.blob_id(path)
    }

    pub(crate) fn files(&self) -> &[String] {
        self.files.get_or_init(|| {
            let mut files = self.repo.files();
            files.sort();
            files
        })
    }

    pub(crate) fn changed_files(&self) -> Option<&[String]> {
        self.changed
            .get_or_init(|| self.repo.changed_files())
            .as_deref()
    }

    /// The files matching `pattern` (see `glob_matches`), sorted.
    pub(crate) fn matching(&self, pattern: &str) -> Vec<&str> {
        self.files()
            .iter()
            .map(String::as_str)
            .filter(|f| glob_matches(pattern, f))
            .collect()
    }
}

/// Whether a path written in `include:` or `rules:` is a glob.
pub(crate) fn is_glob(path: &str) -> bool {
    path.contains(['*', '?', '[', '{'])
}

/// Most alternatives `{a,b}` may make of one pattern.
const MAX_ALTERNATIVES: usize = 64;

/// Ruby's `File.fnmatch?(pattern, path, FNM_PATHNAME | FNM_DOTMATCH | FNM_EXTGLOB)`, which
/// GitLab uses for `include: local` globs and `rules: exists`/`changes`: `*` and `?` stop at
/// `/`, `**/` spans directories, dot files match, `{a,b}` gives alternatives.
pub(crate) fn glob_matches(pattern: &str, path: &str) -> bool {
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    alternatives(pattern).iter().any(|p| {
        glob::Pattern::new(p).is_ok_and(|g| g.matches_with(path, options))
            // `dir/**/*.yml` also matches `dir/a.yml`: `**/` may be no directory at all.
            || (p.contains("**/")
                && glob::Pattern::new(&p.replace("**/", ""))
                    .is_ok_and(|g| g.matches_with(path, options)))
    })
}

/// `{a,b}` alternatives spelled out (the first group at a time), at most `MAX_ALTERNATIVES`.
fn alternatives(pattern: &str) -> Vec<String> {
    let mut done = Vec::new();
    let mut todo = vec![pattern.to_owned()];
    while let Some(p) = todo.pop() {
        let open = p.find('{');
        let close = open.and_then(|o| p.get(o..).and_then(|rest| rest.find('}')).map(|c| o + c));
        match (open, close) {
            (Some(open), Some(close)) => {
                let (head, body, tail) = (
                    p.get(..open).unwrap_or_default(),
                    p.get(open + 1..close).unwrap_or_default(),
                    p.get(close + 1..).unwrap_or_default(),
                );
                for choice in body.split(',') {
                    if done.len() + todo.len() >= MAX_ALTERNATIVES {
                        break;
                    }
                    todo.push(format!("{head}{choice}{tail}"));
                }
            }
            _ => done.push(p),
        }
        if done.len() >= MAX_ALTERNATIVES {
            break;
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_like_ruby_fnmatch_pathname() {
        assert!(glob_matches("configs/*.yml", "configs/a.yml"));
        assert!(!glob_matches("configs/*.yml", "configs/sub/a.yml"));
        assert!(glob_matches("configs/**/*.yml", "configs/sub/deep/a.yml"));
        assert!(glob_matches("configs/**/*.yml", "configs/a.yml"));
        assert!(glob_matches("**/Dockerfile", "Dockerfile"));
        assert!(glob_matches("**/Dockerfile", "a/b/Dockerfile"));
        assert!(glob_matches("*.md", ".hidden.md"));
        assert!(glob_matches("src/{a,b}/*.rs", "src/b/x.rs"));
        assert!(!glob_matches("src/{a,b}/*.rs", "src/c/x.rs"));
        assert!(glob_matches("file?.txt", "file1.txt"));
        assert!(!glob_matches("*.yml", "dir/a.yml"));
    }

    #[test]
    fn blob_ids_are_gits() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            git_blob_id(b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
    }

    #[test]
    fn alternatives_are_bounded() {
        let many = "{a,b,c,d}".repeat(10);
        assert!(alternatives(&many).len() <= MAX_ALTERNATIVES);
    }
}
