//! Typed column access that reads the same on a SQLite row and a PostgreSQL row, so row mapping
//! is written once.

use sqlx::Row;

pub(crate) trait KilnRow {
    fn int(&self, col: &str) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error>;
    fn text(&self, col: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error>;
    fn flag(&self, col: &str) -> Result<bool, sqlx::Error>;
    fn opt_float(&self, col: &str) -> Result<Option<f64>, sqlx::Error>;
}

macro_rules! impl_kiln_row {
    ($row:ty) => {
        impl KilnRow for $row {
            fn int(&self, col: &str) -> Result<i64, sqlx::Error> {
                self.try_get(col)
            }
            fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
                self.try_get(col)
            }
            fn text(&self, col: &str) -> Result<String, sqlx::Error> {
                self.try_get(col)
            }
            fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
                self.try_get(col)
            }
            fn flag(&self, col: &str) -> Result<bool, sqlx::Error> {
                self.try_get(col)
            }
            fn opt_float(&self, col: &str) -> Result<Option<f64>, sqlx::Error> {
                self.try_get(col)
            }
        }
    };
}

impl_kiln_row!(sqlx::sqlite::SqliteRow);
impl_kiln_row!(sqlx::postgres::PgRow);
