"""Outputs of an analysis: report.json, levels.csv, label maps, pictures, HTML, DICOM SEG and SR."""
