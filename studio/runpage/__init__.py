"""The Run page's memory: each person's last workflow and the values they last used in each."""
