from datetime import datetime, timedelta

now = datetime(2024, 1, 15, 12, 30)
later = now + timedelta(days=3, hours=2)
print(later.strftime("%Y-%m-%d %H:%M"))
