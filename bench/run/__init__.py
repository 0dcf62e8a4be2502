"""One RunSpec -> one record: the run's spec and references, the unlearning loop, control (calibration by mixing,
early stopping), sequential requests, and the record's metrics and environment."""
