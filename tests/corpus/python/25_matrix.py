matrix = [
    [1, 2, 3],
    [4, 5, 6],
    [7, 8, 9],
]
transpose = [[row[i] for row in matrix] for i in range(3)]
diagonal = [matrix[i][i] for i in range(len(matrix))]
print(transpose)
print(diagonal)
