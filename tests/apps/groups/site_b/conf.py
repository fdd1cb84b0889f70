NAME = "b"
HITS = 0
