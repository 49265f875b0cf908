//! HTTP routes; handlers stay thin.
