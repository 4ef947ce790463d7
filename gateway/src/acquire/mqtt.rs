//! MQTT sources (being written).
