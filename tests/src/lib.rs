//! End-to-end tests of Firebreak: real processes against peers nobody here wrote (Mosquitto
//! and its clients, pymodbus, mbpoll, socat PTYs). The tests live in `tests/tests/`; they
//! share the process helpers of `gateway/tests/common/mod.rs`. Run them with
//! `scripts/test.sh`, which installs the peers and fails a test whose peer is missing.
