squares = [i * i for i in range(1, 11)]
evens = [n for n in squares if n % 2 == 0]
pairs = [(a, b) for a in range(3) for b in range(3) if a != b]
print(squares, evens, pairs)
