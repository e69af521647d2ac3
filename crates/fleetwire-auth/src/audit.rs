//! audit (todo)
