//! Files and directories Kiln creates hold data others must not read (the database, traces,
//! artifacts, mirrors): they are made 0700 (directories) and 0600 (files).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Creates `dir` (and its parents) and makes it private.
pub async fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).await
}

/// Makes the file `path` readable by its owner alone.
pub async fn make_private(path: &Path) -> std::io::Result<()> {
    tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).await
}

/// Makes the data dir private (also one made by an older Kiln or by hand), and a SQLite
/// database in it (`kiln.db` and its journal files).
pub fn make_data_dir_private(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    for name in ["kiln.db", "kiln.db-wal", "kiln.db-shm", "runner-id"] {
        let file = dir.join(name);
        if file.exists() {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}
