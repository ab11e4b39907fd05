"""What the tests share: helper modules, and scripts the tests run as processes of their own."""
