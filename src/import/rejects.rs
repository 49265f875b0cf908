//! `FILE.rejects.csv`: each row that could not be read or mapped, with its line number
//! and the reason, ready to fix and import again. For a CSV input the file has the
//! input's columns after `rejected_line` and `rejected_reason` (the importer drops those
//! two), for JSON the row's text in a `row` column.
//!
//! The file's length is recorded with each committed batch: a resumed import cuts it
//! back to that length, so a row rejected in a batch that never committed is not listed
//! twice.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::input::{Original, REJECT_COLUMNS};
use super::record::Rejected;

pub struct RejectsFile {
    path: PathBuf,
    writer: Option<csv::Writer<File>>,
    /// The input's columns (CSV), for the header.
    columns: Option<Vec<String>>,
}

impl RejectsFile {
    /// The rejects file of one input: kept up to `keep` bytes (a resumed import's
    /// committed rejects), else removed. It is created at the first rejected row.
    pub fn open(path: &Path, keep: u64) -> io::Result<RejectsFile> {
        let mut rejects = RejectsFile {
            path: path.to_path_buf(),
            writer: None,
            columns: None,
        };
        if keep == 0 {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        } else {
            let mut file = OpenOptions::new().read(true).write(true).open(path)?;
            let len = file.metadata()?.len();
            file.set_len(keep.min(len))?;
            file.seek(SeekFrom::End(0))?;
            rejects.writer = Some(writer_of(file));
        }
        Ok(rejects)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `rejected`; the input's CSV `columns` name the header when the file is new.
    pub fn write(&mut self, rejected: &Rejected, columns: Option<&[String]>) -> io::Result<()> {
        if self.writer.is_none() {
            let file = File::create(&self.path)?;
            let mut writer = writer_of(file);
            let mut header: Vec<String> = REJECT_COLUMNS.iter().map(|c| (*c).to_owned()).collect();
            match columns {
                Some(columns) => {
                    header.extend(
                        columns
                            .iter()
                            .filter(|c| !REJECT_COLUMNS.contains(&c.as_str()))
                            .cloned(),
                    );
                    self.columns = Some(columns.to_vec());
                }
                None => header.push("row".to_owned()),
            }
            writer.write_record(&header)?;
            self.writer = Some(writer);
        }
        let writer = self.writer.as_mut().expect("opened above");
        let mut record = vec![rejected.line.to_string(), one_line(&rejected.reason)];
        match &rejected.original {
            Original::Cells(cells) => {
                // A rejects file imported again: its own reject columns are replaced.
                let columns = self.columns.as_deref().or(columns).unwrap_or(&[]);
                record.extend(
                    cells
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| {
                            columns
                                .get(*i)
                                .is_none_or(|c| !REJECT_COLUMNS.contains(&c.as_str()))
                        })
                        .map(|(_, c)| c.clone()),
                );
            }
            Original::Text(text) => record.push(text.clone()),
        }
        writer.write_record(&record)?;
        Ok(())
    }

    /// Flushes, and says how long the file is now (what a commit records).
    pub fn flush(&mut self) -> io::Result<u64> {
        match self.writer.as_mut() {
            Some(writer) => {
                writer.flush()?;
                // Written at the end only: the length is the position.
                Ok(writer.get_ref().metadata()?.len())
            }
            None => Ok(0),
        }
    }
}

/// Flexible: a broken row of another width than the header is still written whole.
fn writer_of(file: File) -> csv::Writer<File> {
    csv::WriterBuilder::new().flexible(true).from_writer(file)
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}
