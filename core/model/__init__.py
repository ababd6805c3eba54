"""The classifier and what defines it: network, card, calibration, labels, tumour-type head."""
