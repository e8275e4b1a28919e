import unittest


class TestFails(unittest.TestCase):
    def test_subtraction(self):
        # Fails on purpose: the example shows how a failing test is reported.
        self.assertEqual(2 - 1, 2)


if __name__ == "__main__":
    unittest.main()
