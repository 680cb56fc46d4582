//! exporters (being written)
