def is_palindrome(text):
    cleaned = "".join(ch.lower() for ch in text if ch.isalnum())
    return cleaned == cleaned[::-1]

tests = ["racecar", "A man, a plan, a canal: Panama", "hello"]
for t in tests:
    print(t, "->", is_palindrome(t))
