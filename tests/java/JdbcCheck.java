// pgJDBC through tether in transaction mode: server-side prepared statements from the first
// execution (prepareThreshold=1), batches (pipelined extended protocol), transactions with an
// error and rollback, from several threads over a small pool. Exits 1 on a failure.
import java.sql.*;
import java.util.*;
import java.util.concurrent.*;

public class JdbcCheck {
    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/appdb?user=app&prepareThreshold=1";
        try (Connection c = DriverManager.getConnection(url); Statement st = c.createStatement()) {
            st.execute("create table if not exists jdbc_t (id int, v text)");
            st.execute("truncate jdbc_t");
        }
        ExecutorService pool = Executors.newFixedThreadPool(8);
        List<Future<Integer>> results = new ArrayList<>();
        for (int t = 0; t < 8; t++) {
            final int tid = t;
            results.add(pool.submit(() -> {
                int n = 0;
                try (Connection c = DriverManager.getConnection(url)) {
                    try (PreparedStatement ps = c.prepareStatement("select ?::int * ?::int")) {
                        for (int j = 0; j < 30; j++) {
                            ps.setInt(1, tid);
                            ps.setInt(2, j);
                            try (ResultSet rs = ps.executeQuery()) {
                                rs.next();
                                if (rs.getInt(1) != tid * j) throw new IllegalStateException("bad product");
                            }
                            n++;
                        }
                    }
                    c.setAutoCommit(false);
                    try (PreparedStatement ins = c.prepareStatement("insert into jdbc_t values (?, ?)")) {
                        for (int j = 0; j < 20; j++) {
                            ins.setInt(1, tid * 100 + j);
                            ins.setString(2, "t" + tid);
                            ins.addBatch();
                        }
                        ins.executeBatch();
                    }
                    c.commit();
                    try (PreparedStatement bad = c.prepareStatement("select 1 / ?::int")) {
                        bad.setInt(1, 0);
                        bad.executeQuery();
                        throw new IllegalStateException("division by zero did not fail");
                    } catch (SQLException e) {
                        if (!"22012".equals(e.getSQLState())) throw e;
                        c.rollback();
                    }
                    c.setAutoCommit(true);
                    try (PreparedStatement cnt = c.prepareStatement("select count(*) from jdbc_t where v = ?")) {
                        cnt.setString(1, "t" + tid);
                        try (ResultSet rs = cnt.executeQuery()) {
                            rs.next();
                            if (rs.getInt(1) != 20) throw new IllegalStateException("batch rows: " + rs.getInt(1));
                        }
                    }
                }
                return n;
            }));
        }
        int total = 0;
        for (Future<Integer> f : results) total += f.get(60, TimeUnit.SECONDS);
        pool.shutdown();
        System.out.println("{\"ok\":true,\"queries\":" + total + "}");
    }
}
