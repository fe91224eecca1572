//! `rivulet-bencode` (under construction).
