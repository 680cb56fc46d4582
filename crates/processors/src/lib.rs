//! Processors: components that sit between receivers and exporters in a pipeline.
//!
//! - [`batch`]: groups telemetry into larger batches by size or time, as the collector's `batch`
//!   processor, with a bounded buffer so a slow exporter pushes back on the senders.

pub mod batch;

pub use batch::BatchProcessorFactory;
