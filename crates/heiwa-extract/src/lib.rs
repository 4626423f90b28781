//! Text out of a person's files, bounded: what each format holds as text
//! with its pages (slides, chapters, messages, sheets), large files as a
//! stream of sections, source code in chunks along its structure, and
//! extraction in a worker process under a budget of time and memory that is
//! enforced from outside the parser. No database and no model: this is the
//! part that reads untrusted bytes, so it is its own crate, fuzzed alone
//! (`fuzz/`).

pub mod adversarial;
mod code;
mod document;
mod extract;
mod isolate;
mod mail;
mod stream;

pub use code::{code_chunks, CODE_CHUNK_BYTES};
pub use document::{ExtractError, Extracted, MAX_PACKAGE_XML_BYTES, MAX_TEXT_BYTES, MAX_WHOLE_BYTES};
pub use extract::{extract, extract_bytes, is_source, supported};
pub use isolate::{isolate_with, serve_if_worker, Budget, Extractor, SectionReader, WORKER_ENV};
pub use stream::{is_streamed, sections, Sections, MAX_STREAMED_BYTES, SECTION_BYTES};
