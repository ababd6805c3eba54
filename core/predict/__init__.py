"""From scans to answers: status words, assessment, many files at once, whole DICOM series."""
