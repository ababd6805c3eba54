"""The studies behind the shipped model, one command each: leave-one-source-out, head refit, calibration,
recard, backbone fine-tuning and the tumour-type head."""
