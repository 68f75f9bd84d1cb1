//! Issue 14 (outside audit): see the module list in security/mod.rs.
