def safe_divide(a, b):
    try:
        return a / b
    except ZeroDivisionError:
        print("Cannot divide by zero")
        return None
    finally:
        print("done")

print(safe_divide(10, 2))
print(safe_divide(1, 0))
