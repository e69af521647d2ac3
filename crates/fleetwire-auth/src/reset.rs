//! reset (todo)
