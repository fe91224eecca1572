//! `rivulet-magnet` (under construction).
