NAME = "a"
HITS = 0
