"""Word lists for the task-neutral perturbations (``textclf.behaviour.perturb``), written for this project.

Names and places are ones that are rarely ordinary words too (no "May", "Jordan" or "Nice"), so that
swapping them keeps a text's meaning; they are matched as written (capitalised, whole words).
"""

FIRST_NAMES = (
    "Maria", "James", "Aisha", "Kenji", "Olga", "Carlos", "Priya", "Tom", "Fatima", "Lukas", "Mei", "Samuel",
    "Ingrid", "Omar", "Chloe", "Diego", "John", "Mary", "David", "Sarah", "Michael", "Emma", "Peter", "Anna",
    "Robert", "Laura", "Ahmed", "Yuki", "Elena", "Pablo", "Sofia", "Daniel", "Hannah", "Ravi", "Amara", "Ivan",
    "Lucas", "Nadia", "Thomas", "Julia", "George", "Alice", "Paul", "Linda", "Kevin", "Rachel", "Steven", "Karen",
)
PLACES = (
    "London", "Paris", "Lagos", "Mumbai", "Toronto", "Osaka", "Berlin", "Lima", "Cairo", "Sydney", "Oslo", "Seoul",
    "Madrid", "Rome", "Tokyo", "Nairobi", "Chicago", "Boston", "Dublin", "Vienna", "Lisbon", "Delhi", "Moscow",
    "Bangkok", "Manila", "Dallas", "Denver", "Houston", "Prague", "Warsaw", "Athens", "Stockholm", "Helsinki",
    "France", "Germany", "Spain", "Italy", "Japan", "Canada", "Brazil", "Mexico", "India", "Australia", "Egypt",
    "Kenya", "Nigeria", "Sweden", "Norway", "Poland", "Portugal", "Argentina", "Peru", "Chile", "Ireland",
    "England", "Scotland", "Texas", "California", "Florida", "Ohio",
)
URLS = ("https://example.com/info", "www.example.org", "http://example.net/page?id=7", "https://example.co.uk/start")
EMAILS = ("alex@example.com", "support@example.org", "j.smith@example.net", "team@example.co.uk")

# (contracted, expanded); matched as whole words, case-insensitively; a capital first letter is kept.
CONTRACTIONS = (
    ("isn't", "is not"), ("wasn't", "was not"), ("aren't", "are not"), ("don't", "do not"),
    ("doesn't", "does not"), ("didn't", "did not"), ("can't", "cannot"), ("couldn't", "could not"),
    ("won't", "will not"), ("wouldn't", "would not"), ("it's", "it is"), ("I'm", "I am"), ("I've", "I have"),
    ("I'd", "I would"), ("you'll", "you will"),
)
