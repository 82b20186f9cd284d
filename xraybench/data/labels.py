"""The two classes, by label: what every source's folders, files and labels mean."""

CLASSES = ("NORMAL", "PNEUMONIA")  # label 0, label 1
